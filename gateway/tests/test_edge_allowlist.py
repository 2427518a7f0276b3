"""The nginx edge's fast path and the gateway pass on the same client headers."""

import pytest

from gateway.headers import EDGE_FAST_PATH_HEADERS, FORWARDED_REQUEST_HEADERS
from gateway.nginx.render import TEMPLATE, fast_path_client_headers


def test_the_edge_fast_path_passes_on_exactly_the_gateways_get_headers():
    assert fast_path_client_headers() == EDGE_FAST_PATH_HEADERS


def test_the_fast_path_list_is_the_gateways_list_for_reads():
    assert EDGE_FAST_PATH_HEADERS - {"traceparent"} <= FORWARDED_REQUEST_HEADERS
    assert {"authorization", "accept", "if-none-match"} <= EDGE_FAST_PATH_HEADERS
    assert not {"content-type", "idempotency-key", "if-match"} & EDGE_FAST_PATH_HEADERS


def test_a_header_added_to_the_template_alone_is_caught():
    fast_path = "        proxy_set_header Accept $http_accept;\n"
    drifted = TEMPLATE.read_text().replace(
        fast_path, fast_path + "        proxy_set_header X-Uid $http_x_uid;\n", 1
    )

    assert fast_path_client_headers(drifted) == EDGE_FAST_PATH_HEADERS | {"x-uid"}


def test_a_client_header_passed_on_under_another_name_is_refused():
    fast_path = "        proxy_set_header Accept $http_accept;\n"
    renamed = TEMPLATE.read_text().replace(
        fast_path, "        proxy_set_header X-User-Id $http_x_uid;\n", 1
    )

    with pytest.raises(ValueError, match="x_uid"):
        fast_path_client_headers(renamed)
