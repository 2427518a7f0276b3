from http import HTTPStatus
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx

from ...client import AuthenticatedClient, Client
from ...models.auth_problem import AuthProblem
from ...models.auth_user import AuthUser
from ...models.auth_user_patch import AuthUserPatch
from ...models.gateway_problem import GatewayProblem
from ...types import Response


def _get_kwargs(
    user_id: UUID,
    *,
    body: AuthUserPatch,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "patch",
        "url": "/api/v1/auth/users/{user_id}".format(
            user_id=quote(str(user_id), safe=""),
        ),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> AuthProblem | AuthUser | GatewayProblem:
    if response.status_code == 200:
        response_200 = AuthUser.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = AuthProblem.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = AuthProblem.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = AuthProblem.from_dict(response.json())

        return response_403

    if response.status_code == 404:
        response_404 = AuthProblem.from_dict(response.json())

        return response_404

    if response.status_code == 409:
        response_409 = AuthProblem.from_dict(response.json())

        return response_409

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
) -> Response[AuthProblem | AuthUser | GatewayProblem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    user_id: UUID,
    *,
    client: AuthenticatedClient,
    body: AuthUserPatch,
) -> Response[AuthProblem | AuthUser | GatewayProblem]:
    """Change role and/or active; 409 for the last active admin.

    Args:
        user_id (UUID):
        body (AuthUserPatch):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[AuthProblem | AuthUser | GatewayProblem]
    """

    kwargs = _get_kwargs(
        user_id=user_id,
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    user_id: UUID,
    *,
    client: AuthenticatedClient,
    body: AuthUserPatch,
) -> AuthProblem | AuthUser | GatewayProblem | None:
    """Change role and/or active; 409 for the last active admin.

    Args:
        user_id (UUID):
        body (AuthUserPatch):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        AuthProblem | AuthUser | GatewayProblem
    """

    return sync_detailed(
        user_id=user_id,
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    user_id: UUID,
    *,
    client: AuthenticatedClient,
    body: AuthUserPatch,
) -> Response[AuthProblem | AuthUser | GatewayProblem]:
    """Change role and/or active; 409 for the last active admin.

    Args:
        user_id (UUID):
        body (AuthUserPatch):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[AuthProblem | AuthUser | GatewayProblem]
    """

    kwargs = _get_kwargs(
        user_id=user_id,
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    user_id: UUID,
    *,
    client: AuthenticatedClient,
    body: AuthUserPatch,
) -> AuthProblem | AuthUser | GatewayProblem | None:
    """Change role and/or active; 409 for the last active admin.

    Args:
        user_id (UUID):
        body (AuthUserPatch):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        AuthProblem | AuthUser | GatewayProblem
    """

    return (
        await asyncio_detailed(
            user_id=user_id,
            client=client,
            body=body,
        )
    ).parsed
