#!/bin/sh
# Start sshd in the foreground once ptdesk has placed the host key and authorized_keys.
set -eu
USER_NAME=ptdesk
# Run the account as the host user's uid/gid so workspace files belong to them on the host.
if [ -n "${PTDESK_UID:-}" ] && [ "$(id -u "$USER_NAME")" != "$PTDESK_UID" ]; then
    groupmod -o -g "${PTDESK_GID:-$PTDESK_UID}" "$USER_NAME"
    usermod -o -u "$PTDESK_UID" -g "${PTDESK_GID:-$PTDESK_UID}" "$USER_NAME"
fi
if [ ! -s /etc/ssh/ssh_host_ed25519_key ]; then
    echo "ptdesk-ssh: no host key was placed; this container must be started by ptdesk." >&2
    exit 64
fi
# Login shells do not inherit the container's environment: keep CUDA, conda and PATH settings.
env | grep -E '^(PATH|LD_LIBRARY_PATH|CUDA_[A-Z_]*|NVIDIA_[A-Z_]*|CONDA_[A-Z_]*|PYTHONPATH)=' \
    | sed 's/^/export /; s/=\(.*\)$/="\1"/' > /etc/profile.d/ptdesk-env.sh || true
# The people ptdesk lets in (the owner's account is the image's; collaborators' accounts are made
# from /etc/ptdesk/accounts, the same file ptdesk-accounts reads when access changes while running).
/usr/local/sbin/ptdesk-accounts
if [ -s /etc/ptdesk/accounts ]; then
    umask 002  # shared with collaborators: what one writes the others may change (setgid /workspace)
fi
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config
