# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmscale
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The diagnose report in three forms (pure): Markdown for people, JSON for machines, one self-contained HTML page.

The JSON schema (``schema_version`` 1) is stable: ``{schema_version, generated_at, target, counts, findings}``
with each finding ``{id, severity, object, evidence, remedy}``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.llmscale.gpu_serving.plugins.module_utils.diagnose import SCHEMA_VERSION, SEVERITIES

try:
    from html import escape as _escape
except ImportError:  # pragma: no cover - Python 2 only
    from cgi import escape as _escape


def counts(findings):
    return dict((severity, sum(1 for item in findings if item['severity'] == severity)) for severity in SEVERITIES)


def report_document(findings, target, generated_at):
    return {'schema_version': SCHEMA_VERSION, 'generated_at': generated_at, 'target': target,
            'counts': counts(findings), 'findings': findings}


def render_json(document):
    return json.dumps(document, indent=2, sort_keys=True) + '\n'


def _md_cell(text):
    # A table cell: pipes would split it, newlines would end the row.
    return str(text).replace('|', '\\|').replace('\n', ' ')


def _title(document):
    target = document['target']
    return 'Diagnose: %s/%s (%s)' % (target.get('namespace'), target.get('name'), target.get('served_model_name'))


def _verdict(document):
    number = document['counts']
    return '%d critical, %d warning, %d info' % (number['critical'], number['warning'], number['info'])


def render_markdown(document):
    lines = ['# %s' % _title(document), '',
             'Generated %s. %s.' % (document['generated_at'], _verdict(document)), '']
    if not document['findings']:
        lines += ['No finding: the workload, its autoscaler and its monitoring look as configured.', '']
        return '\n'.join(lines)
    lines += ['| Severity | Finding | Object |', '| --- | --- | --- |']
    for item in document['findings']:
        lines.append('| %s | `%s` | %s |' % (item['severity'], item['id'], _md_cell(item['object'])))
    lines.append('')
    for item in document['findings']:
        lines += ['## %s `%s`: %s' % (item['severity'].upper(), item['id'], item['object']), '',
                  'Evidence:', '', '```text', item['evidence'], '```', '',
                  'Remedy: %s' % item['remedy'], '']
    return '\n'.join(lines)


_STYLE = ('body{font-family:sans-serif;margin:2em;max-width:70em}'
          'table{border-collapse:collapse}td,th{border:1px solid #999;padding:.3em .6em;text-align:left}'
          'pre{background:#f4f4f4;padding:.6em;white-space:pre-wrap}'
          '.critical{color:#a00}.warning{color:#a60}.info{color:#036}')


def render_html(document):
    """One page with inline CSS only: no script, no external stylesheet, font or image."""
    parts = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
             '<title>%s</title><style>%s</style></head><body>' % (_escape(_title(document)), _STYLE),
             '<h1>%s</h1>' % _escape(_title(document)),
             '<p>Generated %s. %s.</p>' % (_escape(document['generated_at']), _escape(_verdict(document)))]
    if document['findings']:
        parts.append('<table><tr><th>Severity</th><th>Finding</th><th>Object</th></tr>')
        for index, item in enumerate(document['findings']):
            parts.append('<tr><td class="%s">%s</td><td><a href="#f%d"><code>%s</code></a></td><td>%s</td></tr>' % (
                item['severity'], item['severity'], index, _escape(item['id']), _escape(item['object'])))
        parts.append('</table>')
        for index, item in enumerate(document['findings']):
            parts.append('<h2 id="f%d" class="%s">%s <code>%s</code>: %s</h2>' % (
                index, item['severity'], item['severity'].upper(), _escape(item['id']), _escape(item['object'])))
            parts.append('<p>Evidence:</p><pre>%s</pre><p>Remedy: %s</p>' % (
                _escape(item['evidence']), _escape(item['remedy'])))
    else:
        parts.append('<p>No finding.</p>')
    parts.append('</body></html>')
    return '\n'.join(parts) + '\n'
