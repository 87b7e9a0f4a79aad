"""``{% load rollgate %}``: the ``flag`` block tag and the ``flag_variant`` tag."""

from __future__ import annotations

from typing import Any, Optional

import rollgate
from django import template
from django.template.base import FilterExpression, NodeList, Parser, Token

from ..context import user_context

register = template.Library()


def _context_user(context: Any, user: Optional[FilterExpression]) -> Any:
    if user is not None:
        # ignore_failures: a missing variable is no user, not the string_if_invalid "".
        return user.resolve(context, ignore_failures=True)
    request = context.get("request")
    return getattr(request, "user", None)


def _parse_arguments(parser: Parser, bits: list, tag: str) -> tuple:
    if not bits:
        raise template.TemplateSyntaxError(f'{tag} takes a flag key: {{% {tag} "new-checkout" %}}')
    key = parser.compile_filter(bits[0])
    user = None
    for bit in bits[1:]:
        if bit.startswith("user=") and user is None:
            user = parser.compile_filter(bit[len("user=") :])
        else:
            raise template.TemplateSyntaxError(f"{tag}: unexpected argument {bit!r} (only user=… is accepted)")
    return key, user


class FlagNode(template.Node):
    child_nodelists = ("nodelist_on", "nodelist_off")

    def __init__(self, key: FilterExpression, user: Optional[FilterExpression], on: NodeList, off: NodeList):
        self.key = key
        self.user = user
        self.nodelist_on = on
        self.nodelist_off = off

    def render(self, context: Any) -> str:
        key = self.key.resolve(context)
        user = _context_user(context, self.user)
        if rollgate.flag_enabled(key, user, context=user_context(user, context.get("request"))):
            return self.nodelist_on.render(context)
        return self.nodelist_off.render(context)


@register.tag("flag")
def do_flag(parser: Parser, token: Token) -> FlagNode:
    """``{% flag "key" [user=expr] %}on{% else %}off{% endflag %}``."""
    bits = token.split_contents()
    key, user = _parse_arguments(parser, bits[1:], bits[0])
    on = parser.parse(("else", "endflag"))
    if parser.next_token().contents == "else":
        off = parser.parse(("endflag",))
        parser.delete_first_token()
    else:
        off = NodeList()
    return FlagNode(key, user, on, off)


class FlagVariantNode(template.Node):
    def __init__(self, key: FilterExpression, user: Optional[FilterExpression], target: str):
        self.key = key
        self.user = user
        self.target = target

    def render(self, context: Any) -> str:
        key = self.key.resolve(context)
        user = _context_user(context, self.user)
        context[self.target] = rollgate.variant(key, user, context=user_context(user, context.get("request")))
        return ""


@register.tag("flag_variant")
def do_flag_variant(parser: Parser, token: Token) -> FlagVariantNode:
    """``{% flag_variant "key" [user=expr] as name %}`` sets ``name`` to the variant or None."""
    bits = token.split_contents()
    if len(bits) < 4 or bits[-2] != "as":
        raise template.TemplateSyntaxError('flag_variant: use {% flag_variant "key" as name %}')
    key, user = _parse_arguments(parser, bits[1:-2], bits[0])
    return FlagVariantNode(key, user, bits[-1])
