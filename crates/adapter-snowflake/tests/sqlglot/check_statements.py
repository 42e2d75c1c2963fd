#!/usr/bin/env python3
"""Parses every statement the Snowflake store can build with sqlglot's Snowflake dialect.

Input: a JSON file, a list of {"label", "sql", "binds"} (binds: how many values the
statement is sent with). Each statement must:

* parse as exactly one statement of a known kind (sqlglot turns what it cannot parse into a
  generic `Command`, or raises);
* have as many `?` placeholders as bound values;
* bind nothing where Snowflake needs a constant: after LIMIT, OFFSET, FETCH, TOP, in SAMPLE,
  as the unit of DATEADD, or anywhere in DDL and GRANTs.

Prints one line per problem and exits 1 if there is any; prints the count checked otherwise.
Runs from the store's tests (`cargo test -p ca-notify-adapter-snowflake --lib sqlglot`) in
the Python environment fakesnow is installed in, which already has sqlglot.
"""

from __future__ import annotations

import json
import sys

import sqlglot
from sqlglot import exp

KINDS = (
    exp.Select,
    exp.Union,
    exp.Insert,
    exp.Update,
    exp.Merge,
    exp.Create,
    exp.Alter,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Grant,
)
CONSTANT_ONLY = tuple(
    getattr(exp, name) for name in ("Limit", "Offset", "Fetch", "TableSample") if hasattr(exp, name)
)


def problems(sql: str, binds: int) -> list[str]:
    try:
        statements = [s for s in sqlglot.parse(sql, read="snowflake", error_level=sqlglot.ErrorLevel.RAISE) if s]
    except Exception as e:  # noqa: BLE001 - any parse error is the finding
        return [f"does not parse: {str(e).splitlines()[0]}"]
    if len(statements) != 1:
        return [f"is {len(statements)} statements, not one"]
    tree = statements[0]
    found: list[str] = []
    if not isinstance(tree, KINDS):
        found.append(f"parses as {type(tree).__name__}, not a statement sqlglot understands")
    placeholders = list(tree.find_all(exp.Placeholder))
    if len(placeholders) != binds:
        found.append(f"has {len(placeholders)} placeholders for {binds} bound values")
    if placeholders and isinstance(tree, (exp.Create, exp.Grant)):
        found.append("binds a value in DDL")
    for p in placeholders:
        node = p
        while node.parent is not None:
            parent = node.parent
            if isinstance(parent, CONSTANT_ONLY):
                found.append(f"binds a value in {type(parent).__name__.upper()}, which takes a constant")
                break
            if isinstance(parent, exp.DateAdd) and parent.args.get("unit") is node:
                found.append("binds the unit of DATEADD")
                break
            node = parent
    for limit in tree.find_all(exp.Limit):
        value = limit.expression
        if not (isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit()):
            found.append(f"has LIMIT {value.sql(dialect='snowflake') if value else '(nothing)'}, not an integer literal")
    return found


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        catalog = json.load(f)
    failures = 0
    for entry in catalog:
        for problem in problems(entry["sql"], entry["binds"]):
            failures += 1
            print(f"{entry['label']}: {problem}\n    {entry['sql']}")
    if failures:
        return 1
    print(f"sqlglot {sqlglot.__version__}: {len(catalog)} statements parse as Snowflake SQL")
    return 0


if __name__ == "__main__":
    sys.exit(main())
