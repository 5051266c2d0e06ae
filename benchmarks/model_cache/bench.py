#!/usr/bin/env python
"""Cold pre-warm throughput of llmscale.gpu_serving.model_cache next to `hf download`, and warm re-run time.

Both download the same generated repository from the same olah server on loopback
(tests/integration/hf_server.py), one after the other, into fresh hub caches.
Usage (from the repository root, after `make setup`):
    .venv/bin/python benchmarks/model_cache/bench.py [--size-mib 1024] [--files 8] [--workers 8]
Writes benchmarks/results/model_cache.json and prints a summary.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO_ROOT, 'tests'))
sys.path.insert(0, os.path.join(REPO_ROOT, 'tests', 'integration'))

from helpers import VENV_BIN, run_module  # noqa: E402  pylint: disable=wrong-import-position
from hf_server import OlahServer, commit_files, generate_file  # noqa: E402  pylint: disable=wrong-import-position

REPO_ID = 'llmscale/bench'
MIB = 1024 * 1024


def build_repo(work, size_mib, files):
    inputs = os.path.join(work, 'inputs')
    per_file = size_mib * MIB // files
    layout = {'config.json': b'{"model_type": "bench"}'}
    for index in range(files):
        path = os.path.join(inputs, 'model-%05d.safetensors' % index)
        generate_file(path, per_file)
        layout['model-%05d-of-%05d.safetensors' % (index + 1, files)] = path
    commit, facts = commit_files(os.path.join(work, 'mirrors', 'models', REPO_ID), layout, 'bench')
    shutil.rmtree(inputs)
    return commit, sum(fact['size'] for fact in facts.values())


def module_run(endpoint, dest, workers):
    started = time.monotonic()
    rc, result = run_module('llmscale.gpu_serving.model_cache',
                            {'repo_id': REPO_ID, 'endpoint': endpoint, 'dest': dest, 'workers': workers}, timeout=3600)
    wall = time.monotonic() - started
    if rc != 0:
        raise SystemExit('model_cache failed: %s' % json.dumps(result)[:2000])
    return wall, result


def hf_download(endpoint, dest, workers):
    env = dict(os.environ, HF_ENDPOINT=endpoint, HF_HUB_DISABLE_TELEMETRY='1', HF_HUB_DISABLE_PROGRESS_BARS='1')
    started = time.monotonic()
    proc = subprocess.run([os.path.join(VENV_BIN, 'hf'), 'download', REPO_ID, '--cache-dir', dest,
                           '--max-workers', str(workers), '--quiet'], env=env, capture_output=True, text=True,
                          timeout=3600, check=False)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit('hf download failed: %s' % proc.stderr[-2000:])
    return wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size-mib', type=int, default=1024, help='total size of the generated repository')
    parser.add_argument('--files', type=int, default=8, help='number of weight files')
    parser.add_argument('--workers', type=int, default=8, help='parallel downloads, for both tools')
    parser.add_argument('--rounds', type=int, default=2, help='rounds, alternating which tool goes first')
    parser.add_argument('--out', default=os.path.join(REPO_ROOT, 'benchmarks', 'results', 'model_cache.json'))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix='llmscale-bench-model-cache-')
    rounds = []
    try:
        commit, total = build_repo(work, args.size_mib, args.files)
        with OlahServer(work, os.path.join(work, 'mirrors')) as server:
            for index in range(args.rounds):
                # Alternate which tool goes first: the machine's load drifts, and page caches warm up.
                order = ['hf', 'module'] if index % 2 == 0 else ['module', 'hf']
                run = {'order': order}
                for tool in order:
                    dest = os.path.join(work, 'round-%d-%s' % (index, tool))
                    if tool == 'hf':
                        run['hf_download_seconds'] = round(hf_download(server.endpoint, dest, args.workers), 2)
                    else:
                        cold_wall, cold = module_run(server.endpoint, dest, args.workers)
                        warm_wall, warm = module_run(server.endpoint, dest, args.workers)
                        assert cold['revision'] == commit and cold['bytes_downloaded'] == total
                        assert warm['changed'] is False and warm['hashed'] == 0
                        run.update({'model_cache_cold_seconds': cold['seconds'],
                                    'model_cache_cold_ansible_wall_seconds': round(cold_wall, 2),
                                    'model_cache_warm_seconds': warm['seconds'],
                                    'model_cache_warm_ansible_wall_seconds': round(warm_wall, 2)})
                    shutil.rmtree(dest, ignore_errors=True)
                run['loadavg_1m'] = round(os.getloadavg()[0], 2)
                rounds.append(run)
        hf_seconds = sum(run['hf_download_seconds'] for run in rounds)
        cold_seconds = sum(run['model_cache_cold_seconds'] for run in rounds)
        warm_seconds = sum(run['model_cache_warm_seconds'] for run in rounds)
        results = {
            'repository': {'files': args.files + 1, 'bytes': total, 'commit': commit},
            'workers': args.workers,
            'rounds': rounds,
            'hf_download_bytes_per_second': int(total * len(rounds) / hf_seconds),
            'model_cache_cold_bytes_per_second': int(total * len(rounds) / cold_seconds),
            # > 1: model_cache is faster than hf download (module time, without Ansible's start-up).
            'throughput_ratio_model_cache_over_hf': round(hf_seconds / cold_seconds, 3),
            'warm_over_cold': round(warm_seconds / cold_seconds, 5),
            'machine': {'cpus': os.cpu_count()},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as handle:
        json.dump(results, handle, indent=1)
    print(json.dumps(results, indent=1))


if __name__ == '__main__':
    main()
