"""request-transformer config: what an operator may save, and the messages when it is wrong."""

from __future__ import annotations

import pytest

from policies.base import ConfigError
from policies.plugins.transform_ops import QueryOps, apply_header_ops, apply_query_ops, parse_query_ops
from policies.validation import parse_config


def test_a_full_config_is_parsed_with_lowercase_header_names():
    parsed = parse_config(
        "request-transformer",
        {
            "remove": {"headers": ["X-Debug"], "query": ["debug"], "json": ["internal"]},
            "rename": {"headers": {"X-Old": "X-New"}, "query": {"q": "search"}, "json": {"a": "b"}},
            "replace": {"headers": {"Accept": "application/json"}, "query": {"v": "2"}, "json": {"n": 1}},
            "add": {"headers": {"X-Via-Gateway": "yes"}, "query": {"src": "a b/c"}, "json": {"meta": {"x": [1]}}},
        },
    )
    assert parsed.headers.remove == frozenset({b"x-debug"})
    assert parsed.headers.rename == ((b"x-old", b"x-new"),)
    assert parsed.headers.add == ((b"x-via-gateway", b"yes"),)
    assert parsed.query.add == (("src", b"src=a%20b%2Fc"),)
    assert parsed.json.add == (("meta", {"x": [1]}),)


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({}, "is not valid under any of the given schemas"),
        ({"add": {"headers": {"X-A": "ok\r\nX-Injected: 1"}}}, "add.headers.X-A: header values may contain only"),
        ({"add": {"headers": {"X-A": "nul\x00"}}}, "add.headers.X-A: header values may contain only"),
        ({"add": {"headers": {"Bad Name": "v"}}}, "add.headers.Bad Name: 'Bad Name' is not a valid header name"),
        ({"replace": {"headers": {"Host": "evil"}}}, "replace.headers.Host: 'Host' cannot be changed"),
        ({"add": {"headers": {"Content-Length": "5"}}}, "'Content-Length' cannot be changed"),
        ({"remove": {"headers": ["ok", "Transfer-Encoding"]}}, "remove.headers[1]: 'Transfer-Encoding' cannot be"),
        ({"rename": {"headers": {"X-A": "Connection"}}}, "rename.headers.X-A: 'Connection' cannot be changed"),
        ({"add": {"headers": {"X-Consumer-Id": "admin"}}}, "'X-Consumer-Id' cannot be changed"),
        ({"add": {"headers": {"X-A": 1}}}, "add.headers.X-A: 1 is not of type 'string'"),
        ({"add": {"query": {"a": ["x"]}}}, "add.query.a: ['x'] is not of type 'string'"),
        ({"remove": {"json": "field"}}, "remove.json: 'field' is not of type 'array'"),
        ({"append": {"headers": {"a": "b"}}}, "Additional properties are not allowed ('append' was unexpected)"),
        ({"add": {"body": {"a": "b"}}}, "add: Additional properties are not allowed ('body' was unexpected)"),
    ],
)
def test_bad_configs_name_the_field(config, fragment):
    with pytest.raises(ConfigError) as excinfo:
        parse_config("request-transformer", config)
    assert fragment in str(excinfo.value)


def test_header_ops_run_remove_rename_replace_add():
    parsed = parse_config(
        "request-transformer",
        {
            "add": {"headers": {"x-a": "added", "x-b": "added"}},
            "replace": {"headers": {"x-b": "replaced", "x-c": "replaced"}},
            "rename": {"headers": {"x-old": "x-b"}},
            "remove": {"headers": ["x-a"]},
        },
    )
    headers = [(b"x-a", b"client"), (b"x-old", b"1"), (b"x-old", b"2"), (b"x-b", b"client")]
    # remove x-a; rename x-old -> x-b (replacing the client's x-b); replace x-b (one value); add x-a again.
    assert apply_header_ops(headers, parsed.headers) == [(b"x-b", b"replaced"), (b"x-a", b"added")]


def test_query_edits_keep_untouched_parameters_byte_for_byte():
    ops = parse_query_ops(
        {"remove": {"query": ["drop"]}, "rename": {"query": {"old name": "new"}}, "add": {"query": {"z": "1/2"}}}
    )
    query = b"a=%2F&drop=1&b=1+2&old+name=%41&c=&drop&d"
    assert apply_query_ops(query, ops) == b"a=%2F&b=1+2&new=%41&c=&d&z=1%2F2"
    assert apply_query_ops(b"", QueryOps()) == b""
    assert apply_query_ops(b"drop=1", ops) == b"z=1%2F2"
