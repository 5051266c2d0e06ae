"""Makes `ansible_collections.llmscale.gpu_serving...` importable, as Ansible itself resolves it.

.collections/ansible_collections/llmscale/gpu_serving is this checkout (made by `make setup`).
"""
import os
import sys

COLLECTIONS_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), '.collections')
if COLLECTIONS_PATH not in sys.path:
    sys.path.insert(0, COLLECTIONS_PATH)
