"""docs/schema.md is what the migrated schema's comments say, word for word."""

from __future__ import annotations

from pathlib import Path

from service import db, schema_doc

DOC = Path(__file__).resolve().parents[1] / "docs" / "schema.md"


async def test_docs_schema_md_matches_the_database_comments(conn: db.Connection) -> None:
    """Regenerate with `python -m service schema-doc > docs/schema.md` after a migration."""
    rendered = await schema_doc.render(conn)
    assert DOC.read_text() == rendered
    for table in ("customers", "orders", "redemptions", "loyalty_tier_changes", "events"):
        assert f"### `{table}`" in rendered
    assert "Key: `customer_id, segment_id`." in rendered
