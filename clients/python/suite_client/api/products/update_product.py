from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...models.gateway_problem import GatewayProblem
from ...models.orders_problem import OrdersProblem
from ...models.orders_product import OrdersProduct
from ...models.orders_product_patch import OrdersProductPatch
from ...types import Response


def _get_kwargs(
    sku: str,
    *,
    body: OrdersProductPatch,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "patch",
        "url": "/api/v1/products/{sku}".format(
            sku=quote(str(sku), safe=""),
        ),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> GatewayProblem | OrdersProblem | OrdersProduct:
    if response.status_code == 200:
        response_200 = OrdersProduct.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = OrdersProblem.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = OrdersProblem.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = OrdersProblem.from_dict(response.json())

        return response_403

    if response.status_code == 404:
        response_404 = OrdersProblem.from_dict(response.json())

        return response_404

    if response.status_code == 413:
        response_413 = OrdersProblem.from_dict(response.json())

        return response_413

    if response.status_code == 422:
        response_422 = OrdersProblem.from_dict(response.json())

        return response_422

    if response.status_code == 429:
        response_429 = GatewayProblem.from_dict(response.json())

        return response_429

    if response.status_code == 503:
        response_503 = OrdersProblem.from_dict(response.json())

        return response_503

    if response.status_code == 504:
        response_504 = GatewayProblem.from_dict(response.json())

        return response_504

    response_default = OrdersProblem.from_dict(response.json())

    return response_default


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[GatewayProblem | OrdersProblem | OrdersProduct]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    sku: str,
    *,
    client: AuthenticatedClient,
    body: OrdersProductPatch,
) -> Response[GatewayProblem | OrdersProblem | OrdersProduct]:
    """Change a product's name, price, currency or availability (admins; 403 otherwise).

     Orders placed before keep the price they were placed at.

    Args:
        sku (str):
        body (OrdersProductPatch):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[GatewayProblem | OrdersProblem | OrdersProduct]
    """

    kwargs = _get_kwargs(
        sku=sku,
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    sku: str,
    *,
    client: AuthenticatedClient,
    body: OrdersProductPatch,
) -> GatewayProblem | OrdersProblem | OrdersProduct | None:
    """Change a product's name, price, currency or availability (admins; 403 otherwise).

     Orders placed before keep the price they were placed at.

    Args:
        sku (str):
        body (OrdersProductPatch):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        GatewayProblem | OrdersProblem | OrdersProduct
    """

    return sync_detailed(
        sku=sku,
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    sku: str,
    *,
    client: AuthenticatedClient,
    body: OrdersProductPatch,
) -> Response[GatewayProblem | OrdersProblem | OrdersProduct]:
    """Change a product's name, price, currency or availability (admins; 403 otherwise).

     Orders placed before keep the price they were placed at.

    Args:
        sku (str):
        body (OrdersProductPatch):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[GatewayProblem | OrdersProblem | OrdersProduct]
    """

    kwargs = _get_kwargs(
        sku=sku,
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    sku: str,
    *,
    client: AuthenticatedClient,
    body: OrdersProductPatch,
) -> GatewayProblem | OrdersProblem | OrdersProduct | None:
    """Change a product's name, price, currency or availability (admins; 403 otherwise).

     Orders placed before keep the price they were placed at.

    Args:
        sku (str):
        body (OrdersProductPatch):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        GatewayProblem | OrdersProblem | OrdersProduct
    """

    return (
        await asyncio_detailed(
            sku=sku,
            client=client,
            body=body,
        )
    ).parsed
