from http import HTTPStatus
from typing import Any, cast

import httpx

from ...client import AuthenticatedClient, Client
from ...models.auth_problem import AuthProblem
from ...models.auth_refresh_token import AuthRefreshToken
from ...models.gateway_problem import GatewayProblem
from ...types import Response


def _get_kwargs(
    *,
    body: AuthRefreshToken,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/auth/logout",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Any | AuthProblem | GatewayProblem:
    if response.status_code == 204:
        response_204 = cast(Any, None)
        return response_204

    if response.status_code == 400:
        response_400 = AuthProblem.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = AuthProblem.from_dict(response.json())

        return response_401

    if response.status_code == 413:
        response_413 = AuthProblem.from_dict(response.json())

        return response_413

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
) -> Response[Any | AuthProblem | GatewayProblem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: AuthRefreshToken,
) -> Response[Any | AuthProblem | GatewayProblem]:
    """Revoke the refresh token (and its rotation family).

    Args:
        body (AuthRefreshToken):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | AuthProblem | GatewayProblem]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    body: AuthRefreshToken,
) -> Any | AuthProblem | GatewayProblem | None:
    """Revoke the refresh token (and its rotation family).

    Args:
        body (AuthRefreshToken):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | AuthProblem | GatewayProblem
    """

    return sync_detailed(
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: AuthRefreshToken,
) -> Response[Any | AuthProblem | GatewayProblem]:
    """Revoke the refresh token (and its rotation family).

    Args:
        body (AuthRefreshToken):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | AuthProblem | GatewayProblem]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: AuthRefreshToken,
) -> Any | AuthProblem | GatewayProblem | None:
    """Revoke the refresh token (and its rotation family).

    Args:
        body (AuthRefreshToken):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | AuthProblem | GatewayProblem
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
        )
    ).parsed
