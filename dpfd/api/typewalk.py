"""Reading model annotations: the shared ground of CRD generation, defaulting and error paths."""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel


def unwrap(tp: Any) -> tuple[Any, list[Any]]:
    """Strip `X | None` and `Annotated[X, ...]`; return X and the Annotated metadata met on the way."""
    metadata: list[Any] = []
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            args = get_args(tp)
            metadata.extend(args[1:])
            tp = args[0]
        elif origin in (types.UnionType, typing.Union):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp, metadata  # a real union (int | str): left to its K8sSchema marker
            tp = members[0]
        else:
            return tp, metadata


def model_class(tp: Any) -> type[BaseModel] | None:
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def is_list(tp: Any) -> bool:
    return get_origin(tp) is list


def is_map(tp: Any) -> bool:
    return get_origin(tp) is dict


def is_literal(tp: Any) -> bool:
    return get_origin(tp) is Literal


def item_type(tp: Any) -> Any:
    """The element type of list[X] or the value type of dict[str, X]."""
    args = get_args(tp)
    return args[-1] if args else Any
