from http import HTTPStatus
from typing import Any

import httpx

from ...client import AuthenticatedClient, Client
from ...models.gateway_problem import GatewayProblem
from ...models.orders_order import OrdersOrder
from ...models.orders_order_create import OrdersOrderCreate
from ...models.orders_problem import OrdersProblem
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    body: OrdersOrderCreate,
    idempotency_key: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(idempotency_key, Unset):
        headers["Idempotency-Key"] = idempotency_key

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/orders",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> GatewayProblem | OrdersOrder | OrdersProblem:
    if response.status_code == 201:
        response_201 = OrdersOrder.from_dict(response.json())

        return response_201

    if response.status_code == 400:
        response_400 = OrdersProblem.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = OrdersProblem.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = OrdersProblem.from_dict(response.json())

        return response_403

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
) -> Response[GatewayProblem | OrdersOrder | OrdersProblem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: OrdersOrderCreate,
    idempotency_key: str | Unset = UNSET,
) -> Response[GatewayProblem | OrdersOrder | OrdersProblem]:
    """Place an order; retries with the same Idempotency-Key get the first answer.

    Args:
        idempotency_key (str | Unset):
        body (OrdersOrderCreate):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[GatewayProblem | OrdersOrder | OrdersProblem]
    """

    kwargs = _get_kwargs(
        body=body,
        idempotency_key=idempotency_key,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    body: OrdersOrderCreate,
    idempotency_key: str | Unset = UNSET,
) -> GatewayProblem | OrdersOrder | OrdersProblem | None:
    """Place an order; retries with the same Idempotency-Key get the first answer.

    Args:
        idempotency_key (str | Unset):
        body (OrdersOrderCreate):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        GatewayProblem | OrdersOrder | OrdersProblem
    """

    return sync_detailed(
        client=client,
        body=body,
        idempotency_key=idempotency_key,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: OrdersOrderCreate,
    idempotency_key: str | Unset = UNSET,
) -> Response[GatewayProblem | OrdersOrder | OrdersProblem]:
    """Place an order; retries with the same Idempotency-Key get the first answer.

    Args:
        idempotency_key (str | Unset):
        body (OrdersOrderCreate):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[GatewayProblem | OrdersOrder | OrdersProblem]
    """

    kwargs = _get_kwargs(
        body=body,
        idempotency_key=idempotency_key,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: OrdersOrderCreate,
    idempotency_key: str | Unset = UNSET,
) -> GatewayProblem | OrdersOrder | OrdersProblem | None:
    """Place an order; retries with the same Idempotency-Key get the first answer.

    Args:
        idempotency_key (str | Unset):
        body (OrdersOrderCreate):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        GatewayProblem | OrdersOrder | OrdersProblem
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
            idempotency_key=idempotency_key,
        )
    ).parsed
