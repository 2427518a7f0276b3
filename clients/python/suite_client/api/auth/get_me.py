from http import HTTPStatus
from typing import Any

import httpx

from ...client import AuthenticatedClient, Client
from ...models.auth_problem import AuthProblem
from ...models.auth_user import AuthUser
from ...models.gateway_problem import GatewayProblem
from ...types import Response


def _get_kwargs() -> dict[str, Any]:

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/auth/me",
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> AuthProblem | AuthUser | GatewayProblem:
    if response.status_code == 200:
        response_200 = AuthUser.from_dict(response.json())

        return response_200

    if response.status_code == 401:
        response_401 = AuthProblem.from_dict(response.json())

        return response_401

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
) -> Response[AuthProblem | AuthUser | GatewayProblem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
) -> Response[AuthProblem | AuthUser | GatewayProblem]:
    """The user the access token was issued to.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[AuthProblem | AuthUser | GatewayProblem]
    """

    kwargs = _get_kwargs()

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
) -> AuthProblem | AuthUser | GatewayProblem | None:
    """The user the access token was issued to.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        AuthProblem | AuthUser | GatewayProblem
    """

    return sync_detailed(
        client=client,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
) -> Response[AuthProblem | AuthUser | GatewayProblem]:
    """The user the access token was issued to.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[AuthProblem | AuthUser | GatewayProblem]
    """

    kwargs = _get_kwargs()

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
) -> AuthProblem | AuthUser | GatewayProblem | None:
    """The user the access token was issued to.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        AuthProblem | AuthUser | GatewayProblem
    """

    return (
        await asyncio_detailed(
            client=client,
        )
    ).parsed
