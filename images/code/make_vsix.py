"""Package an extension folder (package.json at its top, node_modules installed) as a .vsix.

A .vsix is a zip: the extension under extension/, a manifest and a content-types file beside it.
`code-server --install-extension FILE.vsix` reads extension/package.json from it. Done here in a
few lines rather than with @vscode/vsce, which would pull a second tree of packages into the build.
Usage: python3 -I make_vsix.py FOLDER OUT.vsix
"""

import json
import os
import sys
import zipfile
from xml.sax.saxutils import escape

CONTENT_TYPES = """<?xml version="1.0" encoding="utf-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension=".json" ContentType="application/json"/>
<Default Extension=".js" ContentType="application/javascript"/>
<Default Extension=".vsixmanifest" ContentType="text/xml"/>
<Default Extension="" ContentType="application/octet-stream"/>
</Types>
"""


def manifest(package: dict) -> str:
    identity = (f'<Identity Language="en-US" Id="{escape(package["name"])}" '
                f'Version="{escape(package["version"])}" Publisher="{escape(package["publisher"])}"/>')
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            '<PackageManifest Version="2.0.0" xmlns="http://schemas.microsoft.com/developer/vsx-schema/2011">'
            f'<Metadata>{identity}<DisplayName>{escape(package.get("displayName", package["name"]))}</DisplayName>'
            f'<Description xml:space="preserve">{escape(package.get("description", ""))}</Description>'
            '<Properties><Property Id="Microsoft.VisualStudio.Code.Engine" '
            f'Value="{escape(package["engines"]["vscode"])}"/></Properties></Metadata>'
            '<Installation><InstallationTarget Id="Microsoft.VisualStudio.Code"/></Installation>'
            '<Dependencies/><Assets><Asset Type="Microsoft.VisualStudio.Code.Manifest" '
            'Path="extension/package.json" Addressable="true"/></Assets></PackageManifest>\n')


def main(folder: str, out: str) -> None:
    with open(os.path.join(folder, "package.json"), encoding="utf-8") as f:
        package = json.load(f)
    # strict_timestamps off: files dated before 1980 (a build context with mtime 0) are stored as 1980.
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, strict_timestamps=False) as vsix:
        vsix.writestr("[Content_Types].xml", CONTENT_TYPES)
        vsix.writestr("extension.vsixmanifest", manifest(package))
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                vsix.write(path, "extension/" + os.path.relpath(path, folder))


if __name__ == "__main__":
    main(*sys.argv[1:])
