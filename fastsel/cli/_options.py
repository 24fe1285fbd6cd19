"""The selectors' option flags: one click option per declared option (fastsel.selectors.Option), read
from the live registry, for ``fastsel select``, ``fastsel curate`` and ``fastsel loop``.

A command built with :class:`SelectorOptionsCommand` lists the flags among its params each time they
are read, so a selector registered after the command was built (a user's module, a test) has its flags
too; the refusal of a flag the chosen method does not declare is :func:`refuse_undeclared`.
"""
from __future__ import annotations

import click

from ..selectors import all_options, check_options
from ..errors import FastselError
from ._common import FiniteFloatRange


def param_type(o) -> click.ParamType:
    """The click type that checks a value of Option ``o``."""
    if o.choices is not None:
        return click.Choice(list(o.choices))
    if o.type is int:
        return click.IntRange(o.min, o.max, min_open=o.min_open, max_open=o.max_open)
    if o.type is float:
        return FiniteFloatRange(o.min, o.max, min_open=o.min_open, max_open=o.max_open)
    return click.STRING


def _help(o, takers, what: str, sweep: bool) -> str:
    text = o.help
    if sweep and o.sweep:
        text += "; a comma list (e.g. 0.8,0.9) runs one sub-run per value"
    default = "" if o.default is None else f" (default {o.default})"
    return f"{' / '.join(takers)}: {text}{default}. {what} {'refuse' if what.endswith('s') else 'refuses'} it."


class _Params(list):
    """The params a command shows; changes (click's own help option is appended, then popped) go to
    the command's own list."""

    def __init__(self, own: list, shown: list):
        super().__init__(shown)
        self._own_list = own

    def append(self, p):
        self._own_list.append(p)

    def pop(self, *i):
        return self._own_list.pop(*i)

    def insert(self, i, p):
        self._own_list.insert(i, p)

    def extend(self, ps):
        self._own_list.extend(ps)

    def remove(self, p):
        self._own_list.remove(p)


class SelectorOptionsCommand(click.Command):
    """A click command whose ``params`` hold, after the param named ``after``, one flag per declared
    selector option (``--name``); ``sweep=True`` (fastsel loop): a sweep option's flag takes a comma
    list (a plain string the command's body reads). Every flag defaults to None (not given)."""

    def __init__(self, *args, after: str, sweep: bool = False, refused_by: str = "Other methods", **kw):
        self._after, self._sweep, self._refused_by = after, sweep, refused_by
        self._built = (None, [])
        super().__init__(*args, **kw)

    @property
    def params(self):
        own = self._own
        at = next(i for i, p in enumerate(own) if p.name == self._after) + 1
        return _Params(own, own[:at] + self.option_params() + own[at:])

    @params.setter
    def params(self, value):
        self._own = list(value)

    def option_params(self) -> list:
        opts = all_options()
        key = tuple((k, id(o), t) for k, (o, t) in opts.items())
        if self._built[0] != key:
            names = {p.name for p in self._own} | {x for p in self._own for x in p.opts}
            made = []
            for k, (o, takers) in opts.items():
                if k in names or o.flag in names:  # a name the command has already (refused at registration
                    continue                       # for the common ones): reachable from Python only
                swept = self._sweep and o.sweep
                made.append(click.Option([o.flag, k], type=click.STRING if swept else param_type(o), default=None,
                                         help=_help(o, takers, self._refused_by, self._sweep)))
            self._built = (key, made)
        return self._built[1]


def given_options(options: dict) -> dict:
    """The selector options given on the command line (the flags left at None dropped)."""
    return {k: v for k, v in options.items() if v is not None}


def refuse_undeclared(method: str, options: dict, sharded: bool = False) -> None:
    """One usage line for flags ``method`` does not declare: '--tau, --alpha apply to --method
    threshold, not greedy' (the flags that share the first one's methods named together)."""
    try:
        check_options(method, options, flags=True, sharded=sharded)
    except FastselError as e:
        opts = all_options()
        bad = [k for k in options if method not in opts[k][1]]
        if not bad:
            raise click.UsageError(str(e)) from None
        takers = opts[bad[0]][1]
        same = [opts[k][0].flag for k in bad if opts[k][1] == takers]
        raise click.UsageError(f"{', '.join(same)} {'applies' if len(same) == 1 else 'apply'} to --method "
                               f"{' or '.join(takers)}, not {method}") from None
