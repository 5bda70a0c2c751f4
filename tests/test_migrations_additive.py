"""The rule that makes rolling upgrades possible: migrations are additive within a minor
version (docs/design.md, "Rolling upgrades"). A daemon not yet upgraded keeps running on
the schema a newer one migrated, naming only the columns it knows, so a migration may add
tables, nullable columns or columns with a server default, and indexes; it may not drop,
rename or retype what the previous code uses, make a column required, or add a uniqueness
the previous code's writes could break.

Each migration's ``upgrade()`` after ``ADDITIVE_SINCE`` is read (not run) for the Alembic
operations that break the rule; ``downgrade()`` may do anything. A minor version that must
break the rule says so by moving ``ADDITIVE_SINCE`` to its breaking revision, in the same
change, with the release notes telling operators to upgrade every host at once.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

VERSIONS = Path(__file__).resolve().parents[1] / "src/gnomon/store/migrations/versions"

# The last revision before the current run of additive migrations began.
ADDITIVE_SINCE = "0020"

# Operations that take away or change what the previous code reads and writes.
_TAKING = {"drop_table", "drop_column", "rename_table", "drop_index", "drop_constraint"}
# Words of raw SQL (op.execute) that do the same.
_TAKING_SQL = ("DROP ", "RENAME ", " TYPE ", "SET NOT NULL")


def non_additive(source: str) -> list[str]:
    """What in the ``upgrade()`` of the migration ``source`` breaks the additive rule, one
    line per operation, with its line number."""
    tree = ast.parse(source)
    upgrades = [
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "upgrade"
    ]
    created = _created_tables(upgrades)
    problems: list[str] = []
    for function in upgrades:
        for table, call in _calls(function, None):
            problem = _problem(call, table, created)
            if problem is not None:
                problems.append(f"line {call.lineno}: {ast.unparse(call)[:120]}: {problem}")
    return problems


def _calls(node: ast.AST, table: str | None) -> list[tuple[str | None, ast.Call]]:
    """The calls under ``node``, each with the table of the ``batch_alter_table`` block
    around it (or None)."""
    found: list[tuple[str | None, ast.Call]] = []
    for child in ast.iter_child_nodes(node):
        inner = table
        if isinstance(child, ast.With):
            for item in child.items:
                call = item.context_expr
                if isinstance(call, ast.Call) and _name(call) == "batch_alter_table":
                    inner = _text(call.args[0]) if call.args else None
        if isinstance(child, ast.Call):
            found.append((table, child))
        found.extend(_calls(child, inner))
    return found


def _problem(call: ast.Call, batch_table: str | None, created: set[str]) -> str | None:
    name = _name(call)
    keywords = {keyword.arg: keyword.value for keyword in call.keywords}
    if name in _TAKING:
        return "takes away what the previous code uses"
    if name == "alter_column":
        return _altered(keywords)
    if name == "add_column":
        return _added(call)
    if name == "create_unique_constraint":
        return UNIQUE
    if name == "create_index" and _true(keywords.get("unique")):
        table = _text(keywords.get("table_name")) or batch_table
        if batch_table is None and len(call.args) > 1:
            table = _text(call.args[1])
        return None if table in created else UNIQUE
    if name == "execute" and call.args:
        sql = f" {(_text(call.args[0]) or '').upper()} "
        if any(word in sql for word in _TAKING_SQL):
            return "raw SQL that drops, renames, retypes or requires"
    return None


UNIQUE = "adds a uniqueness the previous code's writes could break"


def _altered(keywords: dict[str | None, ast.expr]) -> str | None:
    if "type_" in keywords:
        return "changes a column's type"
    if "new_column_name" in keywords:
        return "renames a column"
    if _false(keywords.get("nullable")):
        return "makes a column required, which the previous code's inserts leave out"
    return None


def _added(call: ast.Call) -> str | None:
    column = next((arg for arg in call.args if _name(arg) == "Column"), None)
    if not isinstance(column, ast.Call):
        return None
    keywords = {keyword.arg: keyword.value for keyword in column.keywords}
    required = _false(keywords.get("nullable")) or _true(keywords.get("primary_key"))
    if required and "server_default" not in keywords:
        return "adds a required column without a server default"
    return None


def _created_tables(functions: list[ast.FunctionDef]) -> set[str]:
    return {
        table
        for function in functions
        for node in ast.walk(function)
        if isinstance(node, ast.Call) and _name(node) == "create_table" and node.args
        if (table := _text(node.args[0])) is not None
    }


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _text(node: ast.AST | None) -> str | None:
    """A string constant's value (``sa.text("...")``'s too), else None."""
    if isinstance(node, ast.Call) and _name(node) == "text" and node.args:
        node = node.args[0]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _false(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def _true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _migrations_since(revision: str) -> list[Path]:
    numbered = VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py")
    return sorted(path for path in numbered if path.name[:4] > revision)


def test_every_migration_since_the_cut_off_is_additive() -> None:
    problems = {
        path.name: found
        for path in _migrations_since(ADDITIVE_SINCE)
        if (found := non_additive(path.read_text()))
    }
    assert not problems, (
        "migrations must be additive within a minor version (docs/design.md, Rolling"
        f" upgrades): {problems}"
    )


def test_the_cut_off_is_a_migration_there_is() -> None:
    assert list(VERSIONS.glob(f"{ADDITIVE_SINCE}_*.py")), ADDITIVE_SINCE


def test_revisions_are_numbered_in_sequence_as_the_unknown_revision_check_reads_them() -> None:
    """``refuse_unknown_revision`` takes any revision named otherwise, or numbered after
    the newest, for a newer gnomon's."""
    from gnomon.store import HEAD_REVISION

    paths = sorted(VERSIONS.glob("*.py"))
    numbers = [path.name[:4] for path in paths]
    assert numbers == [f"{n:04d}" for n in range(1, len(paths) + 1)]
    assert numbers[-1] == HEAD_REVISION
    for path in paths:
        assert f'revision: str = "{path.name[:4]}"' in path.read_text(), path.name


ADDITIVE = """
def upgrade():
    op.create_table("widgets", sa.Column("id", sa.Integer, primary_key=True))
    op.create_index("uq_widgets_id", "widgets", ["id"], unique=True)
    op.add_column("flow_runs", sa.Column("note", sa.Text))
    op.add_column("flow_runs", sa.Column("tries", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_flow_runs_note", "flow_runs", ["note"])
    with op.batch_alter_table("task_runs") as batch_op:
        batch_op.add_column(sa.Column("hint", sa.Text, nullable=True))
        batch_op.alter_column("hint", server_default="x")
    op.execute("UPDATE flow_runs SET note = 'old' WHERE note IS NULL")

def downgrade():
    op.drop_column("flow_runs", "note")
    op.drop_table("widgets")
"""


@pytest.mark.parametrize(
    "statement",
    [
        'op.drop_column("flow_runs", "signal")',
        'op.drop_table("run_bins")',
        'op.rename_table("run_logs", "logs")',
        'op.drop_index("ix_flow_runs_created_id", table_name="flow_runs")',
        'op.alter_column("flow_runs", "name", type_=sa.String(50))',
        'op.alter_column("flow_runs", "name", new_column_name="title")',
        'op.alter_column("flow_runs", "entrypoint", nullable=False)',
        'op.add_column("flow_runs", sa.Column("host", sa.Text, nullable=False))',
        'op.create_unique_constraint("uq_name", "flow_runs", ["name"])',
        'op.create_index("uq_flow_runs_name", "flow_runs", ["name"], unique=True)',
        'op.execute("ALTER TABLE flow_runs DROP COLUMN signal")',
        'op.execute(sa.text("ALTER TABLE flow_runs RENAME COLUMN name TO title"))',
        'op.execute("ALTER TABLE flow_runs ALTER COLUMN name TYPE varchar(9)")',
        'with op.batch_alter_table("flow_runs") as batch_op:\n'
        '        batch_op.drop_column("signal")',
        'with op.batch_alter_table("flow_runs") as batch_op:\n'
        '        batch_op.create_index("uq_x", ["name"], unique=True)',
    ],
)
def test_the_check_names_each_operation_that_takes_away_what_the_old_code_uses(
    statement: str,
) -> None:
    source = ADDITIVE.replace("def upgrade():\n", f"def upgrade():\n    {statement}\n", 1)

    (problem,) = non_additive(source)

    assert problem.startswith(f"line {3 + statement.count(chr(10))}: ")


def test_the_check_lets_additive_operations_and_any_downgrade_pass() -> None:
    assert non_additive(ADDITIVE) == []
