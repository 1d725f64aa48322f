#!/bin/sh
# Install every .vsix in the given folder into code-server's extensions folder, one at a time,
# each checked: a file that does not install stops the build with one sentence naming it (the image
# is then not tagged at all, so nothing is half-installed).
set -eu
folder="$1"
for file in "$folder"/*.vsix; do
    [ -e "$file" ] || continue
    name="$(basename "$file")"  # NN-NAME.vsix: entry NN of code_extensions (ptdesk numbers them)
    if ! out="$(code-server --install-extension "$file" 2>&1)" || printf '%s' "$out" | grep -qi "failed"; then
        printf '%s\n' "$out" >&2
        echo "ptdesk: the extension file ${name#*-} (code_extensions entry $(expr "${name%%-*}" + 0)) does not install in code-server (its reason is above); fix or remove it." >&2
        exit 1
    fi
    echo "ptdesk: installed $name"
done
