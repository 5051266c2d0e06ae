# Sourced by the scripts in this folder: work from the checkout's root, with its
# .venv first on PATH and Ansible resolving llmscale.gpu_serving from .collections.
# shellcheck shell=bash
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export PATH="$repo/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$repo/ansible.cfg"
export ANSIBLE_COLLECTIONS_PATH="$repo/.collections"
export ANSIBLE_ROLES_PATH="$repo/roles"
