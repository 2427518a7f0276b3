from http import HTTPStatus
from typing import Any

import httpx

from ...client import AuthenticatedClient, Client
from ...models.auth_problem import AuthProblem
from ...models.auth_refresh_token import AuthRefreshToken
from ...models.auth_token_pair import AuthTokenPair
from ...models.gateway_problem import GatewayProblem
from ...types import Response


def _get_kwargs(
    *,
    body: AuthRefreshToken,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/auth/refresh",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> AuthProblem | AuthTokenPair | GatewayProblem:
    if response.status_code == 200:
        response_200 = AuthTokenPair.from_dict(response.json())

        return response_200

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
) -> Response[AuthProblem | AuthTokenPair | GatewayProblem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: AuthRefreshToken,
) -> Response[AuthProblem | AuthTokenPair | GatewayProblem]:
    """A new token pair for a refresh token, which stops working.

    Args:
        body (AuthRefreshToken):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[AuthProblem | AuthTokenPair | GatewayProblem]
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
    client: AuthenticatedClient | Client,
    body: AuthRefreshToken,
) -> AuthProblem | AuthTokenPair | GatewayProblem | None:
    """A new token pair for a refresh token, which stops working.

    Args:
        body (AuthRefreshToken):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        AuthProblem | AuthTokenPair | GatewayProblem
    """

    return sync_detailed(
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: AuthRefreshToken,
) -> Response[AuthProblem | AuthTokenPair | GatewayProblem]:
    """A new token pair for a refresh token, which stops working.

    Args:
        body (AuthRefreshToken):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[AuthProblem | AuthTokenPair | GatewayProblem]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    body: AuthRefreshToken,
) -> AuthProblem | AuthTokenPair | GatewayProblem | None:
    """A new token pair for a refresh token, which stops working.

    Args:
        body (AuthRefreshToken):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        AuthProblem | AuthTokenPair | GatewayProblem
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
        )
    ).parsed
