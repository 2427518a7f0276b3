from http import HTTPStatus
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx

from ...client import AuthenticatedClient, Client
from ...models.gateway_problem import GatewayProblem
from ...models.orders_order import OrdersOrder
from ...models.orders_order_status_change import OrdersOrderStatusChange
from ...models.orders_problem import OrdersProblem
from ...types import UNSET, Response, Unset


def _get_kwargs(
    order_id: UUID,
    *,
    body: OrdersOrderStatusChange,
    if_match: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(if_match, Unset):
        headers["If-Match"] = if_match

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/orders/{order_id}/status".format(
            order_id=quote(str(order_id), safe=""),
        ),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> GatewayProblem | OrdersOrder | OrdersProblem:
    if response.status_code == 200:
        response_200 = OrdersOrder.from_dict(response.json())

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

    if response.status_code == 409:
        response_409 = OrdersProblem.from_dict(response.json())

        return response_409

    if response.status_code == 412:
        response_412 = OrdersProblem.from_dict(response.json())

        return response_412

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
    order_id: UUID,
    *,
    client: AuthenticatedClient,
    body: OrdersOrderStatusChange,
    if_match: str | Unset = UNSET,
) -> Response[GatewayProblem | OrdersOrder | OrdersProblem]:
    """Set the status (admins); 409 for an illegal transition, 412 for a stale If-Match.

    Args:
        order_id (UUID):
        if_match (str | Unset):
        body (OrdersOrderStatusChange):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[GatewayProblem | OrdersOrder | OrdersProblem]
    """

    kwargs = _get_kwargs(
        order_id=order_id,
        body=body,
        if_match=if_match,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    order_id: UUID,
    *,
    client: AuthenticatedClient,
    body: OrdersOrderStatusChange,
    if_match: str | Unset = UNSET,
) -> GatewayProblem | OrdersOrder | OrdersProblem | None:
    """Set the status (admins); 409 for an illegal transition, 412 for a stale If-Match.

    Args:
        order_id (UUID):
        if_match (str | Unset):
        body (OrdersOrderStatusChange):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        GatewayProblem | OrdersOrder | OrdersProblem
    """

    return sync_detailed(
        order_id=order_id,
        client=client,
        body=body,
        if_match=if_match,
    ).parsed


async def asyncio_detailed(
    order_id: UUID,
    *,
    client: AuthenticatedClient,
    body: OrdersOrderStatusChange,
    if_match: str | Unset = UNSET,
) -> Response[GatewayProblem | OrdersOrder | OrdersProblem]:
    """Set the status (admins); 409 for an illegal transition, 412 for a stale If-Match.

    Args:
        order_id (UUID):
        if_match (str | Unset):
        body (OrdersOrderStatusChange):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[GatewayProblem | OrdersOrder | OrdersProblem]
    """

    kwargs = _get_kwargs(
        order_id=order_id,
        body=body,
        if_match=if_match,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    order_id: UUID,
    *,
    client: AuthenticatedClient,
    body: OrdersOrderStatusChange,
    if_match: str | Unset = UNSET,
) -> GatewayProblem | OrdersOrder | OrdersProblem | None:
    """Set the status (admins); 409 for an illegal transition, 412 for a stale If-Match.

    Args:
        order_id (UUID):
        if_match (str | Unset):
        body (OrdersOrderStatusChange):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        GatewayProblem | OrdersOrder | OrdersProblem
    """

    return (
        await asyncio_detailed(
            order_id=order_id,
            client=client,
            body=body,
            if_match=if_match,
        )
    ).parsed
