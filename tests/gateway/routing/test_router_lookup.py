"""``gateway.router.RouteTable.lookup``: host, tenant, base path, route, method."""

from __future__ import annotations

from collections.abc import Hashable

import pytest

from gateway.router import Match, MethodNotAllowed, RouteTable, normalize_request_host
from gateway.snapshot import ApiSpec, RouteSpec, TenantSpec


def _api(
    api_id: str,
    tenant: str,
    base: str,
    *,
    hosts: tuple[str, ...] = (),
    strip: bool = True,
    routes: tuple[RouteSpec, ...] = (),
) -> ApiSpec:
    return ApiSpec(api_id, tenant, base, hosts=hosts, strip_base_path=strip, routes=routes)


def _route(route_id: str, path: str = "/", *methods: str, enabled: bool = True) -> RouteSpec:
    return RouteSpec(route_id, path, frozenset(methods), enabled)


def _hit(table: RouteTable, host: str | bytes, method: str, path: str) -> tuple[Hashable, Hashable | None, str]:
    result = table.lookup(host, method, path)
    assert isinstance(result, Match), result
    return result.entry.api_id, result.entry.route_id, result.upstream_path


@pytest.fixture
def table() -> RouteTable:
    tenants = [
        TenantSpec("acme", ("api.example.com", "*.acme.io")),
        TenantSpec("globex", ("globex.com", "[::1]", "127.0.0.1")),
        TenantSpec("demo", ("localhost",), is_default=True),
    ]
    apis = [
        _api("orders", "acme", "/orders", routes=(_route("list", "/", "GET"), _route("create", "/items", "POST"))),
        _api("orders-v2", "acme", "/orders/v2", strip=False),
        _api("billing", "acme", "/billing", hosts=("billing.acme.io",)),
        _api("wild", "acme", "/wild", hosts=("*.eu.acme.io",)),
        _api("g-orders", "globex", "/orders"),
        _api("demo-echo", "demo", "/echo"),
        _api("demo-only-host", "demo", "/special", hosts=("special.test",)),
    ]
    return RouteTable(tenants, apis)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("API.Example.COM.", "api.example.com"),
        ("api.example.com:443", "api.example.com"),
        ("api.example.com:80", "api.example.com"),
        ("api.example.com.:8443", "api.example.com"),
        (b"Api.Example.Com", "api.example.com"),
        ("[::1]:8081", "[::1]"),
        ("[::1]", "[::1]"),
        ("[0:0:0:0:0:0:0:1]:443", "[::1]"),
        ("[2001:DB8::1]", "[2001:db8::1]"),
        ("::1", "[::1]"),
        ("127.0.0.1:8081", "127.0.0.1"),
        ("", ""),
    ],
)
def test_normalize_request_host(raw: str | bytes, expected: str) -> None:
    assert normalize_request_host(raw) == expected


@pytest.mark.parametrize(
    "host", ["API.Example.COM.", "api.example.com:443", "api.example.com:8081", b"api.example.com", "Api.Example.Com."]
)
def test_host_forms_reach_the_same_tenant(table: RouteTable, host: str | bytes) -> None:
    assert _hit(table, host, "GET", "/orders/1") == ("orders", "list", "/1")


def test_ipv6_and_ipv4_literal_hosts(table: RouteTable) -> None:
    assert _hit(table, "[::1]:8081", "GET", "/orders") == ("g-orders", None, "/")
    assert _hit(table, "[0::1]", "GET", "/orders") == ("g-orders", None, "/")
    assert _hit(table, "127.0.0.1:8081", "GET", "/orders") == ("g-orders", None, "/")


def test_wildcard_tenant_host(table: RouteTable) -> None:
    assert _hit(table, "x.acme.io", "GET", "/orders") == ("orders", "list", "/")
    assert _hit(table, "deep.x.acme.io", "GET", "/orders") == ("orders", "list", "/")
    # '*.acme.io' does not cover 'acme.io' itself: that falls to the default tenant
    assert table.lookup("acme.io", "GET", "/orders") is None
    assert _hit(table, "acme.io", "GET", "/echo") == ("demo-echo", None, "/")


def test_exact_tenant_host_beats_a_wildcard() -> None:
    tenants = [TenantSpec("a", ("*.example.com",)), TenantSpec("b", ("api.example.com",))]
    apis = [_api("a-api", "a", "/x"), _api("b-api", "b", "/x")]
    table = RouteTable(tenants, apis)
    assert _hit(table, "api.example.com", "GET", "/x")[0] == "b-api"
    assert _hit(table, "www.example.com", "GET", "/x")[0] == "a-api"


def test_more_specific_wildcard_tenant_wins() -> None:
    tenants = [TenantSpec("a", ("*.example.com",)), TenantSpec("b", ("*.eu.example.com",))]
    table = RouteTable(tenants, [_api("a-api", "a", "/x"), _api("b-api", "b", "/x")])
    assert _hit(table, "api.eu.example.com", "GET", "/x")[0] == "b-api"
    assert _hit(table, "api.us.example.com", "GET", "/x")[0] == "a-api"


def test_default_tenant_serves_unknown_hosts(table: RouteTable) -> None:
    assert _hit(table, "unknown.test", "GET", "/echo/a") == ("demo-echo", None, "/a")
    assert _hit(table, "", "GET", "/echo") == ("demo-echo", None, "/")
    assert table.tenant_for_host("unknown.test") == "demo"


def test_without_default_tenant_unknown_hosts_match_nothing() -> None:
    table = RouteTable([TenantSpec("a", ("a.test",))], [_api("x", "a", "/x")])
    assert table.lookup("b.test", "GET", "/x") is None
    assert table.tenant_for_host("b.test") is None


def test_tenant_isolation(table: RouteTable) -> None:
    # globex's host never reaches acme's APIs, even where acme alone has the path
    assert table.lookup("globex.com", "GET", "/billing") is None
    assert _hit(table, "globex.com", "GET", "/orders/v2/x") == ("g-orders", None, "/v2/x")
    assert table.tenant_for_host("globex.com") == "globex"
    # and an unknown host (default tenant) never reaches either of them
    assert table.lookup("unknown.test", "GET", "/orders") is None
    # an API listing a host owned by another tenant is unreachable through it
    tenants = [TenantSpec("a", ("a.test",)), TenantSpec("b", ("b.test",))]
    other = RouteTable(tenants, [_api("sneaky", "a", "/x", hosts=("b.test",))])
    assert other.lookup("b.test", "GET", "/x") is None
    assert other.lookup("a.test", "GET", "/x") is None


def test_api_hosts_restrict_within_the_tenant(table: RouteTable) -> None:
    assert _hit(table, "billing.acme.io", "GET", "/billing/1") == ("billing", None, "/1")
    assert table.lookup("api.example.com", "GET", "/billing/1") is None
    assert table.lookup("other.acme.io", "GET", "/billing/1") is None
    # host-less APIs still serve the API-specific host
    assert _hit(table, "billing.acme.io", "GET", "/orders")[0] == "orders"


def test_api_wildcard_hosts(table: RouteTable) -> None:
    assert _hit(table, "x.eu.acme.io", "GET", "/wild")[0] == "wild"
    assert _hit(table, "y.x.eu.acme.io", "GET", "/wild")[0] == "wild"
    assert table.lookup("x.us.acme.io", "GET", "/wild") is None
    assert table.lookup("eu.acme.io", "GET", "/wild") is None


def test_api_on_default_tenant_with_specific_host(table: RouteTable) -> None:
    assert _hit(table, "special.test", "GET", "/special/a")[0] == "demo-only-host"
    assert table.lookup("localhost", "GET", "/special/a") is None


def test_longest_base_path_prefix_wins(table: RouteTable) -> None:
    assert _hit(table, "api.example.com", "DELETE", "/orders/v2") == ("orders-v2", None, "/orders/v2")
    assert _hit(table, "api.example.com", "DELETE", "/orders/v2/9") == ("orders-v2", None, "/orders/v2/9")
    assert _hit(table, "api.example.com", "GET", "/orders/v3") == ("orders", "list", "/v3")


def test_the_longest_prefix_api_owns_its_namespace() -> None:
    apis = [
        _api("outer", "t", "/a"),
        _api("inner", "t", "/a/b", routes=(_route("only", "/c"),)),
    ]
    table = RouteTable([TenantSpec("t", ("t.test",))], apis)
    assert _hit(table, "t.test", "GET", "/a/b/c/d")[0] == "inner"
    assert table.lookup("t.test", "GET", "/a/b/other") is None  # never falls back to /a
    assert _hit(table, "t.test", "GET", "/a/bb")[0] == "outer"


@pytest.mark.parametrize(
    ("path", "matched"),
    [
        ("/orders", True),
        ("/orders/", True),
        ("/orders/1", True),
        ("/ordersx", False),
        ("/order", False),
        ("/Orders", False),
        ("/", False),
        ("/x/orders", False),
    ],
)
def test_base_path_matches_whole_segments(table: RouteTable, path: str, matched: bool) -> None:
    assert (table.lookup("globex.com", "GET", path) is not None) is matched


def test_method_restriction_and_405(table: RouteTable) -> None:
    assert _hit(table, "api.example.com", "GET", "/orders/items") == ("orders", "list", "/items")
    assert _hit(table, "api.example.com", "HEAD", "/orders/items") == ("orders", "list", "/items")
    assert _hit(table, "api.example.com", "POST", "/orders/items/7") == ("orders", "create", "/items/7")
    refused = table.lookup("api.example.com", "DELETE", "/orders/items")
    assert isinstance(refused, MethodNotAllowed)
    assert refused.allow == ("GET", "HEAD", "POST")
    assert refused.allow_header == b"GET, HEAD, POST"
    refused = table.lookup("api.example.com", "POST", "/orders/other")
    assert isinstance(refused, MethodNotAllowed)
    assert refused.allow_header == b"GET, HEAD"


def test_method_names_are_case_sensitive(table: RouteTable) -> None:
    assert isinstance(table.lookup("api.example.com", "get", "/orders"), MethodNotAllowed)
    assert _hit(table, "globex.com", "PROPFIND", "/orders")[0] == "g-orders"  # no routes: any method


def test_deepest_route_allowing_the_method_wins() -> None:
    routes = (
        _route("root", "/"),
        _route("admin-read", "/admin", "GET"),
        _route("admin-users", "/admin/users", "POST"),
        _route("items-any", "/items"),
        _route("items-get", "/items", "GET"),
    )
    table = RouteTable([TenantSpec("t", ("t.test",))], [_api("a", "t", "/api", routes=routes)])
    assert _hit(table, "t.test", "GET", "/api/admin/users")[1] == "admin-read"
    assert _hit(table, "t.test", "POST", "/api/admin/users/1")[1] == "admin-users"
    assert _hit(table, "t.test", "DELETE", "/api/admin")[1] == "root"
    assert _hit(table, "t.test", "GET", "/api/items/1")[1] == "items-get"
    assert _hit(table, "t.test", "PUT", "/api/items")[1] == "items-any"
    assert _hit(table, "t.test", "GET", "/api/adminx")[1] == "root"


def test_routes_match_whole_segments_and_unknown_route_is_404() -> None:
    routes = (_route("items", "/items"), _route("deep", "/a/b/c", "GET"))
    table = RouteTable([TenantSpec("t", ("t.test",))], [_api("a", "t", "/api", routes=routes)])
    assert _hit(table, "t.test", "GET", "/api/items/") == ("a", "items", "/items/")
    assert table.lookup("t.test", "GET", "/api/itemsx") is None
    assert table.lookup("t.test", "GET", "/api") is None
    assert table.lookup("t.test", "GET", "/api/a/b") is None
    assert _hit(table, "t.test", "GET", "/api/a/b/c/d")[1] == "deep"
    assert table.lookup("t.test", "GET", "/nothing") is None


def test_disabled_routes_and_unroutable_apis() -> None:
    apis = [
        _api("off", "t", "/off", routes=(_route("r", "/", enabled=False),)),
        ApiSpec("draft", "t", "/draft", routable=False),
        _api("partial", "t", "/p", routes=(_route("on", "/on"), _route("gone", "/gone", enabled=False))),
    ]
    table = RouteTable([TenantSpec("t", ("t.test",))], apis)
    assert table.lookup("t.test", "GET", "/off") is None
    assert table.lookup("t.test", "GET", "/draft") is None
    assert table.lookup("t.test", "GET", "/p/gone") is None
    assert _hit(table, "t.test", "GET", "/p/on")[1] == "on"
    assert table.route_count == 1  # only enabled routes of routable APIs count


@pytest.mark.parametrize(
    ("strip", "path", "upstream"),
    [
        (True, "/orders", "/"),
        (True, "/orders/", "/"),
        (True, "/orders/1", "/1"),
        (True, "/orders/1/", "/1/"),
        (False, "/orders", "/orders"),
        (False, "/orders/1/", "/orders/1/"),
    ],
)
def test_strip_or_keep_base_path(strip: bool, path: str, upstream: str) -> None:
    table = RouteTable([TenantSpec("t", ("t.test",))], [_api("o", "t", "/orders", strip=strip)])
    match = table.lookup("t.test", "GET", path)
    assert isinstance(match, Match)
    assert match.upstream_path == upstream
    assert match.entry.strip_segments == (1 if strip else 0)


def test_multi_segment_base_path_strip_count_and_pattern() -> None:
    routes = (_route("r", "/items/all", "GET"),)
    table = RouteTable([TenantSpec("t", ("t.test",))], [_api("o", "t", "/shop/v1", routes=routes)])
    match = table.lookup("t.test", "GET", "/shop/v1/items/all/1")
    assert isinstance(match, Match)
    assert match.entry.strip_segments == 2
    assert match.entry.pattern == "/shop/v1/items/all"
    assert match.upstream_path == "/items/all/1"


def test_same_base_path_tie_prefers_the_more_specific_host_binding() -> None:
    apis = [
        _api("any", "t", "/x"),
        _api("wild", "t", "/x", hosts=("*.t.test",)),
        _api("exact", "t", "/x", hosts=("api.t.test",)),
    ]
    table = RouteTable([TenantSpec("t", ("*.t.test", "t.test"))], apis)
    assert _hit(table, "api.t.test", "GET", "/x")[0] == "exact"
    assert _hit(table, "www.t.test", "GET", "/x")[0] == "wild"
    assert _hit(table, "t.test", "GET", "/x")[0] == "any"


def test_no_match_cases(table: RouteTable) -> None:
    assert table.lookup("api.example.com", "GET", "/") is None
    assert table.lookup("api.example.com", "GET", "/unknown/orders") is None
    assert table.lookup("api.example.com", "GET", "/__apim/health") is None


@pytest.mark.parametrize(
    ("tenants", "apis", "message"),
    [
        ([TenantSpec("a", ("x.test",)), TenantSpec("b", ("X.test.",))], [], "claimed by two tenants"),
        ([TenantSpec("a", ("*.x.test",)), TenantSpec("b", ("*.x.test",))], [], "claimed by two tenants"),
        ([TenantSpec("a", is_default=True), TenantSpec("b", is_default=True)], [], "more than one default"),
        ([TenantSpec("a")], [_api("x", "nobody", "/x")], "unknown tenant"),
        ([TenantSpec("a"), TenantSpec("a")], [], "given twice"),
    ],
)
def test_contradictory_snapshots_are_refused(tenants: list[TenantSpec], apis: list[ApiSpec], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RouteTable(tenants, apis)


@pytest.mark.parametrize(
    "build",
    [
        lambda: ApiSpec("a", "t", "/"),
        lambda: ApiSpec("a", "t", "orders"),
        lambda: ApiSpec("a", "t", "/orders/"),
        lambda: ApiSpec("a", "t", "/a//b"),
        lambda: ApiSpec("a", "t", "/a/../b"),
        lambda: ApiSpec("a", "t", "/a%2fb"),
        lambda: ApiSpec("a", "t", "/__apim"),
        lambda: ApiSpec("a", "t", "/__apim/x"),
        lambda: ApiSpec("a", "t", "/x", hosts=("x.test:443",)),
        lambda: ApiSpec("a", "t", "/x", hosts=("a.test", "A.test.")),
        lambda: RouteSpec("r", "/a;b"),
        lambda: RouteSpec("r", "/x", frozenset({"BREW"})),
        lambda: TenantSpec("t", ("http://x.test",)),
        lambda: TenantSpec("t", ("a.*.test",)),
    ],
)
def test_invalid_specs_are_refused(build: object) -> None:
    with pytest.raises(ValueError, match=r"."):
        build()  # type: ignore[operator]


def test_specs_normalise_hosts_and_methods() -> None:
    api = ApiSpec("a", "t", "/x", hosts=("API.Example.com.", "::1", "*.Wild.TEST"))
    assert api.hosts == ("api.example.com", "[::1]", "*.wild.test")
    assert RouteSpec("r", "/", frozenset({"get", "post"})).methods == {"GET", "HEAD", "POST"}
    assert ApiSpec("a", "t", "/__apimx").base_path == "/__apimx"


def test_host_cache_is_bounded_and_never_changes_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.router.HOST_CACHE_SIZE", 8)
    tenants = [TenantSpec("a", ("a.test",)), TenantSpec("d", is_default=True)]
    table = RouteTable(tenants, [_api("x", "a", "/x"), _api("y", "d", "/y")])
    for round_ in range(3):
        for i in range(20):
            assert table.lookup(f"h{i}.test", "GET", "/x") is None
            assert _hit(table, f"h{i}.test:{round_}", "GET", "/y/1")[0] == "y"
            assert _hit(table, b"A.test", "GET", "/x")[0] == "x"
            assert table.lookup(b"A.test", "GET", "/y") is None
    assert len(table._host_cache) <= 8
