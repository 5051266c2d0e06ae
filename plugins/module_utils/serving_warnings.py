# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Values that work but are probably not what a site wants: one warning string each.

Pure; the caller decides whether warnings are shown or turned into errors.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.k8s_validation import parse_image

# RFC 2606 / RFC 6761 names reserved for documentation and tests, and the
# placeholders found in guides (docs/DESIGN.md shows llm.yourdomain.com).
RESERVED_SUFFIXES = ('.example', '.invalid', '.test', '.localhost')
RESERVED_DOMAINS = ('example.com', 'example.net', 'example.org')
PLACEHOLDER_WORDS = ('yourdomain', 'your-domain', 'mydomain', 'my-domain', 'changeme', 'change-me',
                     'replace-me', 'placeholder', 'domain.tld')

# Tags that name a moving target rather than one build.
MUTABLE_TAGS = frozenset(('latest', 'main', 'master', 'nightly', 'dev', 'devel', 'develop', 'edge',
                          'stable', 'head', 'canary', 'unstable', 'rolling'))

# Why 300 s: before vLLM answers /health it loads the weights (an 8B model in
# bf16 is 16 GB, a 70B 140 GB: at the 1-2 GB/s of a network volume or a cold
# page cache that alone is 10 s to over a minute), compiles with torch.compile
# (tens of seconds, minutes on a cold cache), captures CUDA graphs and profiles
# the KV cache (10-60 s more). Several minutes is normal for a first start;
# a startup budget below 5 minutes makes the kubelet kill a healthy pod in the
# middle of loading, which then loops forever.
MIN_STARTUP_SECONDS = 300


def placeholder_host_warning(variable, host):
    """A warning when ``host`` is a documentation or placeholder name, loopback, or localhost; else None."""
    if not isinstance(host, str) or not host:
        return None
    name = host.lower().rstrip('.')
    name = name[2:] if name.startswith('*.') else name
    reason = None
    try:
        if ipaddress.ip_address(name).is_loopback:
            reason = 'a loopback address'
    except ValueError:
        if name == 'localhost' or name.endswith(RESERVED_SUFFIXES):
            reason = 'a name reserved for tests and documentation (RFC 2606/6761)' if name != 'localhost' \
                else 'localhost, which no client outside the pod reaches'
        elif any(name == domain or name.endswith('.' + domain) for domain in RESERVED_DOMAINS):
            reason = 'an example domain (RFC 2606)'
        elif any(word in name for word in PLACEHOLDER_WORDS):
            reason = 'a placeholder'
    if reason:
        return '%s: %r is %s; set the host clients will use' % (variable, host, reason)
    return None


def mutable_image_warning(variable, reference):
    """A warning when the image has no digest and its tag moves (latest, main, none...); else None."""
    parsed = parse_image(reference)
    if parsed is None or parsed['digest']:
        return None
    tag = parsed['tag']
    if tag is None:
        return '%s: %r has no tag, so it means :latest; pin a version tag or add @sha256:<digest>' % (
            variable, reference)
    if tag.lower() in MUTABLE_TAGS or tag.lower().endswith(('-latest', '-nightly')):
        return '%s: %r uses the moving tag %r: nodes may run different builds; pin a version tag or add ' \
               '@sha256:<digest>' % (variable, reference, tag)
    return None


def startup_budget_warning(variable, seconds, minimum=MIN_STARTUP_SECONDS):
    """A warning when the startup budget is shorter than a model load can take; else None."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds >= minimum:
        return None
    return '%s: %s s is shorter than loading a model can take (weights, compilation, CUDA graphs: often ' \
           'several minutes); below %d s the kubelet may restart vLLM while it loads' % (variable, seconds, minimum)


def serving_warnings(checks):
    """Run several checks: ``checks`` is [(function, variable, value)]; returns the warnings that apply."""
    found = []
    for function, variable, value in checks:
        warning = function(variable, value)
        if warning:
            found.append(warning)
    return found
