from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="AuthJWK")


@_attrs_define
class AuthJWK:
    """
    Attributes:
        kty (str | Unset):
        kid (str | Unset):
        alg (str | Unset):
        use (str | Unset):
        n (str | Unset):
        e (str | Unset):
    """

    kty: str | Unset = UNSET
    kid: str | Unset = UNSET
    alg: str | Unset = UNSET
    use: str | Unset = UNSET
    n: str | Unset = UNSET
    e: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        kty = self.kty

        kid = self.kid

        alg = self.alg

        use = self.use

        n = self.n

        e = self.e

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if kty is not UNSET:
            field_dict["kty"] = kty
        if kid is not UNSET:
            field_dict["kid"] = kid
        if alg is not UNSET:
            field_dict["alg"] = alg
        if use is not UNSET:
            field_dict["use"] = use
        if n is not UNSET:
            field_dict["n"] = n
        if e is not UNSET:
            field_dict["e"] = e

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        kty = d.pop("kty", UNSET)

        kid = d.pop("kid", UNSET)

        alg = d.pop("alg", UNSET)

        use = d.pop("use", UNSET)

        n = d.pop("n", UNSET)

        e = d.pop("e", UNSET)

        auth_jwk = cls(
            kty=kty,
            kid=kid,
            alg=alg,
            use=use,
            n=n,
            e=e,
        )

        return auth_jwk
