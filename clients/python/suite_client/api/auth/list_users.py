from http import HTTPStatus
from typing import Any

import httpx

from ...client import AuthenticatedClient, Client
from ...models.auth_problem import AuthProblem
from ...models.auth_user_page import AuthUserPage
from ...models.gateway_problem import GatewayProblem
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    limit: int | Unset = 50,
    cursor: Any | Unset = UNSET,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    params["limit"] = limit

    params["cursor"] = cursor

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/auth/users",
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> AuthProblem | AuthUserPage | GatewayProblem:
    if response.status_code == 200:
        response_200 = AuthUserPage.from_dict(response.json())

        return response_200

    if response.status_code == 401:
        response_401 = AuthProblem.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = AuthProblem.from_dict(response.json())

        return response_403

    if response.status_code == 422:
        response_422 = AuthProblem.from_dict(response.json())

        return response_422

    if response.status_code == 429:
        response_429 = GatewayProblem.from_dict(response.json())

        return response_429

    if response.status_code == 503:
        response_503 = AuthProblem.from_dict(response.json())

        return response_503

    if response.status_code == 504:
        response_504 = GatewayProblem.from_dict(response.json())

        return response_504

    response_default = AuthProblem.from_dict(response.json())

    return response_default


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[AuthProblem | AuthUserPage | GatewayProblem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 50,
    cursor: Any | Unset = UNSET,
) -> Response[AuthProblem | AuthUserPage | GatewayProblem]:
    """Users newest first; pass `next_cursor` back as `cursor` for the next page.

    Args:
        limit (int | Unset):  Default: 50.
        cursor (Any | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[AuthProblem | AuthUserPage | GatewayProblem]
    """

    kwargs = _get_kwargs(
        limit=limit,
        cursor=cursor,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 50,
    cursor: Any | Unset = UNSET,
) -> AuthProblem | AuthUserPage | GatewayProblem | None:
    """Users newest first; pass `next_cursor` back as `cursor` for the next page.

    Args:
        limit (int | Unset):  Default: 50.
        cursor (Any | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        AuthProblem | AuthUserPage | GatewayProblem
    """

    return sync_detailed(
        client=client,
        limit=limit,
        cursor=cursor,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 50,
    cursor: Any | Unset = UNSET,
) -> Response[AuthProblem | AuthUserPage | GatewayProblem]:
    """Users newest first; pass `next_cursor` back as `cursor` for the next page.

    Args:
        limit (int | Unset):  Default: 50.
        cursor (Any | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[AuthProblem | AuthUserPage | GatewayProblem]
    """

    kwargs = _get_kwargs(
        limit=limit,
        cursor=cursor,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 50,
    cursor: Any | Unset = UNSET,
) -> AuthProblem | AuthUserPage | GatewayProblem | None:
    """Users newest first; pass `next_cursor` back as `cursor` for the next page.

    Args:
        limit (int | Unset):  Default: 50.
        cursor (Any | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        AuthProblem | AuthUserPage | GatewayProblem
    """

    return (
        await asyncio_detailed(
            client=client,
            limit=limit,
            cursor=cursor,
        )
    ).parsed
