"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


# Frozen column types: this file must not change when the models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CITEXT = sa.String(collation="NOCASE").with_variant(postgresql.CITEXT(), "postgresql")
JSONB = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime().with_variant(postgresql.TIMESTAMP(precision=0), "postgresql")
STRING_ARRAY = sa.Text().with_variant(postgresql.ARRAY(sa.String(255)), "postgresql")

# orgs and services reference each other. SQLite does not check a foreign key's table when
# the table is created, so the keys go inline there; PostgreSQL adds them once services exists.
ORG_BACKEND_COLUMNS = (
    "email_backend_id",
    "transactional_email_backend_id",
    "storage_backend_id",
    "event_backend_id",
    "detail_backend_id",
    "push_backend_id",
)


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _org_backend_fks_inline() -> list[sa.ForeignKeyConstraint]:
    if not _sqlite():
        return []
    return [
        sa.ForeignKeyConstraint(
            [column], ["services.id"], name=op.f(f"orgs_{column}_fkey"), ondelete="SET NULL"
        )
        for column in ORG_BACKEND_COLUMNS
    ]


def _empty_array() -> sa.TextClause:
    if _sqlite():
        return sa.text("'[]'")
    return sa.text("ARRAY[]::varchar[]")


def _fields_size_check(column: str) -> str:
    # the stored size of a flat JSON map, bounded as in the original
    if _sqlite():
        return f"length(CAST({column} AS BLOB)) <= 5120"
    return f"pg_column_size({column}) <= 5120"


def upgrade() -> None:
    if not _sqlite():
        op.execute("CREATE EXTENSION IF NOT EXISTS citext")
    EMPTY_ARRAY = _empty_array()
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("actor_id", sa.String(length=255), nullable=False),
        sa.Column("resource", sa.String(length=255), nullable=False),
        sa.Column("resource_id", sa.String(length=255), nullable=False),
        sa.Column("changeset", JSONB, nullable=False),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("audit_log_pkey")),
    )
    op.create_table(
        "message_contents",
        sa.Column("id", ID, nullable=False),
        sa.Column("subject", sa.Text(), server_default=sa.text("('')"), nullable=False),
        sa.Column("body", sa.Text(), server_default=sa.text("('')"), nullable=False),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("message_contents_pkey")),
    )
    op.create_table(
        "orgs",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", CITEXT, nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("contact_schema", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "action_schema_version", sa.SmallInteger(), server_default=sa.text("2"), nullable=False
        ),
        sa.Column("high_security", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("doi_thank_you", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("email_backend_id", ID, nullable=True),
        sa.Column("transactional_email_backend_id", ID, nullable=True),
        sa.Column("storage_backend_id", ID, nullable=True),
        sa.Column("event_backend_id", ID, nullable=True),
        sa.Column("detail_backend_id", ID, nullable=True),
        sa.Column("push_backend_id", ID, nullable=True),
        sa.Column("email_from", sa.String(length=255), nullable=True),
        sa.Column("reply_enabled", sa.Boolean(), server_default=sa.text("(true)"), nullable=False),
        sa.Column("sender_rewrite", sa.Boolean(), server_default=sa.text("(true)"), nullable=False),
        sa.Column(
            "supporter_confirm", sa.Boolean(), server_default=sa.text("(false)"), nullable=False
        ),
        sa.Column("supporter_confirm_template", sa.String(length=255), nullable=True),
        sa.Column(
            "custom_supporter_confirm",
            sa.Boolean(),
            server_default=sa.text("(false)"),
            nullable=False,
        ),
        sa.Column(
            "custom_action_confirm", sa.Boolean(), server_default=sa.text("(false)"), nullable=False
        ),
        sa.Column(
            "custom_action_deliver", sa.Boolean(), server_default=sa.text("(false)"), nullable=False
        ),
        sa.Column(
            "custom_event_deliver", sa.Boolean(), server_default=sa.text("(false)"), nullable=False
        ),
        sa.Column("config", JSONB, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        *_org_backend_fks_inline(),
        sa.PrimaryKeyConstraint("id", name=op.f("orgs_pkey")),
    )
    with op.batch_alter_table("orgs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("orgs_name_index"), ["name"], unique=True)

    op.create_table(
        "sources",
        sa.Column("id", ID, nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("medium", sa.String(length=255), nullable=False),
        sa.Column(
            "campaign", sa.String(length=255), server_default=sa.text("'unknown'"), nullable=False
        ),
        sa.Column("content", sa.String(length=255), server_default=sa.text("('')"), nullable=False),
        sa.Column(
            "location", sa.String(length=255), server_default=sa.text("('')"), nullable=False
        ),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("sources_pkey")),
    )
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("sources_source_medium_campaign_content_location_index"),
            ["source", "medium", "campaign", "content", "location"],
            unique=True,
        )

    op.create_table(
        "users",
        sa.Column("id", ID, nullable=False),
        sa.Column("email", CITEXT, nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("hashed_password", sa.String(length=255), nullable=False),
        sa.Column("confirmed_at", TIMESTAMP, nullable=True),
        sa.Column("perms", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("picture_url", sa.Text(), nullable=True),
        sa.Column("job_title", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("users_pkey")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("users_email_index"), ["email"], unique=True)
        batch_op.create_index(batch_op.f("users_external_id_index"), ["external_id"], unique=True)

    op.create_table(
        "campaigns",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", CITEXT, nullable=False),
        sa.Column("external_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column(
            "force_delivery", sa.Boolean(), server_default=sa.text("(false)"), nullable=False
        ),
        sa.Column("public_actions", STRING_ARRAY, server_default=EMPTY_ARRAY, nullable=False),
        sa.Column("transient_actions", STRING_ARRAY, server_default=EMPTY_ARRAY, nullable=False),
        sa.Column("contact_schema", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("config", JSONB, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("status", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("supporter_confirm", sa.Boolean(), nullable=True),
        sa.Column("supporter_confirm_template", sa.String(length=255), nullable=True),
        sa.Column("action_confirm", sa.Boolean(), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("org_id", ID, nullable=True),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("campaigns_org_id_fkey"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("campaigns_pkey")),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("campaigns_end_date_index"), ["end_date"], unique=False)
        batch_op.create_index(batch_op.f("campaigns_name_index"), ["name"], unique=True)
        batch_op.create_index(
            batch_op.f("campaigns_org_id_external_id_index"), ["org_id", "external_id"], unique=True
        )
        batch_op.create_index(batch_op.f("campaigns_org_id_index"), ["org_id"], unique=False)
        batch_op.create_index(
            batch_op.f("campaigns_start_date_index"), ["start_date"], unique=False
        )

    op.create_table(
        "confirms",
        sa.Column("id", ID, nullable=False),
        sa.Column("operation", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("code", sa.String(length=255), nullable=False),
        sa.Column("charges", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("creator_id", ID, nullable=True),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["creator_id"], ["users.id"], name=op.f("confirms_creator_id_fkey"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("confirms_pkey")),
    )
    with op.batch_alter_table("confirms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("confirms_code_index"), ["code"], unique=True)

    op.create_table(
        "email_templates",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("locale", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("org_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("email_templates_org_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("email_templates_pkey")),
    )
    with op.batch_alter_table("email_templates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("email_templates_org_id_name_locale_index"),
            ["org_id", "name", "locale"],
            unique=True,
        )

    op.create_table(
        "public_keys",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("public", sa.LargeBinary(), nullable=False),
        sa.Column("private", sa.LargeBinary(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("expired", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("org_id", ID, nullable=False),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("public_keys_org_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("public_keys_pkey")),
    )
    with op.batch_alter_table("public_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("public_keys_org_id_index"), ["org_id"], unique=False)

    op.create_table(
        "services",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=255), server_default=sa.text("('')"), nullable=False),
        sa.Column("user", sa.String(length=255), server_default=sa.text("('')"), nullable=False),
        sa.Column(
            "password", sa.String(length=255), server_default=sa.text("('')"), nullable=False
        ),
        sa.Column("path", sa.String(length=255), nullable=True),
        sa.Column("sending_from", sa.String(length=255), nullable=True),
        sa.Column("transactional_email_budget", sa.Integer(), nullable=True),
        sa.Column("org_id", ID, nullable=False),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("services_org_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("services_pkey")),
    )
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("services_org_id_name_index"), ["org_id", "name"], unique=False
        )

    if not _sqlite():
        for column in ORG_BACKEND_COLUMNS:
            op.create_foreign_key(
                op.f(f"orgs_{column}_fkey"),
                "orgs",
                "services",
                [column],
                ["id"],
                ondelete="SET NULL",
            )

    op.create_table(
        "staffers",
        sa.Column("id", ID, nullable=False),
        sa.Column("perms", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_signin_at", TIMESTAMP, nullable=True),
        sa.Column("org_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("staffers_org_id_fkey"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("staffers_user_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("staffers_pkey")),
    )
    with op.batch_alter_table("staffers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("staffers_org_id_user_id_index"), ["org_id", "user_id"], unique=True
        )
        batch_op.create_index(batch_op.f("staffers_user_id_index"), ["user_id"], unique=False)

    op.create_table(
        "users_tokens",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("token", sa.LargeBinary(), nullable=False),
        sa.Column("context", sa.String(length=255), nullable=False),
        sa.Column("sent_to", sa.String(length=255), nullable=True),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("users_tokens_user_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("users_tokens_pkey")),
    )
    with op.batch_alter_table("users_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("users_tokens_context_token_index"), ["context", "token"], unique=True
        )
        batch_op.create_index(batch_op.f("users_tokens_user_id_index"), ["user_id"], unique=False)

    op.create_table(
        "action_pages",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", CITEXT, nullable=False),
        sa.Column("locale", sa.String(length=255), nullable=False),
        sa.Column("delivery", sa.Boolean(), server_default=sa.text("(true)"), nullable=False),
        sa.Column("config", JSONB, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("live", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("org_id", ID, nullable=False),
        sa.Column("extra_supporters", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("thank_you_template", sa.String(length=255), nullable=True),
        sa.Column("supporter_confirm_template", sa.String(length=255), nullable=True),
        sa.Column("duplicate_template", sa.String(length=255), nullable=True),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("action_pages_campaign_id_fkey"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("action_pages_org_id_fkey"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("action_pages_pkey")),
    )
    with op.batch_alter_table("action_pages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("action_pages_campaign_id_index"), ["campaign_id"], unique=False
        )
        batch_op.create_index(batch_op.f("action_pages_name_index"), ["name"], unique=True)
        batch_op.create_index(batch_op.f("action_pages_org_id_index"), ["org_id"], unique=False)

    op.create_table(
        "mtt",
        sa.Column("id", ID, nullable=False),
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("start_at", TIMESTAMP, nullable=False),
        sa.Column("end_at", TIMESTAMP, nullable=False),
        sa.Column("stats", JSONB, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("test_email", sa.String(length=255), nullable=True),
        sa.Column("cc_contacts", STRING_ARRAY, server_default=EMPTY_ARRAY, nullable=False),
        sa.Column("cc_sender", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("message_template", sa.String(length=255), nullable=True),
        sa.Column("max_emails_per_hour", sa.Integer(), nullable=True),
        sa.Column(
            "timezone", sa.String(length=255), server_default=sa.text("'Etc/UTC'"), nullable=False
        ),
        sa.Column("drip_delivery", sa.Boolean(), server_default=sa.text("(true)"), nullable=False),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("mtt_campaign_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("mtt_pkey")),
    )
    with op.batch_alter_table("mtt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("mtt_campaign_id_index"), ["campaign_id"], unique=True)

    op.create_table(
        "targets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("area", sa.String(length=255), nullable=True),
        sa.Column("locale", sa.String(length=255), nullable=True),
        sa.Column("fields", JSONB, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("targets_campaign_id_fkey")
        ),
        sa.CheckConstraint(_fields_size_check("fields"), name=op.f("max_fields_size")),
        sa.PrimaryKeyConstraint("id", name=op.f("targets_pkey")),
    )
    with op.batch_alter_table("targets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("targets_campaign_id_index"), ["campaign_id"], unique=False
        )
        batch_op.create_index(batch_op.f("targets_external_id_index"), ["external_id"], unique=True)

    op.create_table(
        "supporters",
        sa.Column("id", ID, nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(), nullable=False),
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("action_page_id", ID, nullable=False),
        sa.Column("source_id", ID, nullable=True),
        sa.Column("first_name", sa.String(length=255), nullable=True),
        sa.Column("last_name", sa.String(length=255), nullable=True),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("address", sa.String(length=255), nullable=True),
        sa.Column("area", sa.String(length=32), nullable=True),
        sa.Column("processing_status", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("email_status", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("email_status_changed", TIMESTAMP, nullable=True),
        sa.Column("dupe_rank", sa.Integer(), nullable=True),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["action_page_id"],
            ["action_pages.id"],
            name=op.f("supporters_action_page_id_fkey"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("supporters_campaign_id_fkey"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("supporters_source_id_fkey"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("supporters_pkey")),
    )
    with op.batch_alter_table("supporters", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("supporters_action_page_id_index"), ["action_page_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("supporters_campaign_id_fingerprint_index"),
            ["campaign_id", "fingerprint"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("supporters_dupe_rank_index"), ["dupe_rank"], unique=False)
        batch_op.create_index(
            batch_op.f("supporters_fingerprint_index"), ["fingerprint"], unique=False
        )

    op.create_table(
        "target_emails",
        sa.Column("id", ID, nullable=False),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("email_status", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.String(length=255), nullable=True),
        sa.Column("soft_bounce_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("target_id", sa.Uuid(), nullable=False),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["targets.id"],
            name=op.f("target_emails_target_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("target_emails_pkey")),
    )
    with op.batch_alter_table("target_emails", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("target_emails_target_id_index"), ["target_id"], unique=False
        )

    op.create_table(
        "actions",
        sa.Column("id", ID, nullable=False),
        sa.Column("ref", sa.LargeBinary(), nullable=True),
        sa.Column("supporter_id", ID, nullable=True),
        sa.Column("with_consent", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("action_type", sa.String(length=255), nullable=False),
        sa.Column("fields", JSONB, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("campaign_id", ID, nullable=True),
        sa.Column("action_page_id", ID, nullable=False),
        sa.Column("source_id", ID, nullable=True),
        sa.Column("processing_status", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("testing", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["action_page_id"],
            ["action_pages.id"],
            name=op.f("actions_action_page_id_fkey"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("actions_campaign_id_fkey"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("actions_source_id_fkey"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["supporter_id"],
            ["supporters.id"],
            name=op.f("actions_supporter_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(_fields_size_check("fields"), name=op.f("max_fields_size")),
        sa.PrimaryKeyConstraint("id", name=op.f("actions_pkey")),
    )
    with op.batch_alter_table("actions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("actions_action_page_id_index"), ["action_page_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("actions_campaign_id_action_type_index"),
            ["campaign_id", "action_type"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("actions_processing_status_id_index"),
            ["processing_status", "id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("actions_ref_index"), ["ref"], unique=False)
        batch_op.create_index(
            batch_op.f("actions_supporter_id_index"), ["supporter_id"], unique=False
        )

    op.create_table(
        "contacts",
        sa.Column("id", ID, nullable=False),
        sa.Column("supporter_id", ID, nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("crypto_nonce", sa.LargeBinary(), nullable=True),
        sa.Column("public_key_id", ID, nullable=True),
        sa.Column("sign_key_id", ID, nullable=True),
        sa.Column(
            "communication_consent", sa.Boolean(), server_default=sa.text("(false)"), nullable=True
        ),
        sa.Column("communication_scopes", STRING_ARRAY, server_default=EMPTY_ARRAY, nullable=False),
        sa.Column(
            "delivery_consent", sa.Boolean(), server_default=sa.text("(false)"), nullable=False
        ),
        sa.Column("org_id", ID, nullable=True),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("contacts_org_id_fkey"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["public_key_id"], ["public_keys.id"], name=op.f("contacts_public_key_id_fkey")
        ),
        sa.ForeignKeyConstraint(
            ["sign_key_id"], ["public_keys.id"], name=op.f("contacts_sign_key_id_fkey")
        ),
        sa.ForeignKeyConstraint(
            ["supporter_id"],
            ["supporters.id"],
            name=op.f("contacts_supporter_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("contacts_pkey")),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("contacts_org_id_index"), ["org_id"], unique=False)
        batch_op.create_index(
            batch_op.f("contacts_supporter_id_org_id_index"),
            ["supporter_id", "org_id"],
            unique=False,
        )

    op.create_table(
        "donations",
        sa.Column("id", ID, nullable=False),
        sa.Column("schema", sa.Integer(), nullable=True),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("frequency_unit", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("action_id", ID, nullable=False),
        sa.Column("inserted_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("donations_amount_positive")),
        sa.ForeignKeyConstraint(
            ["action_id"], ["actions.id"], name=op.f("donations_action_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("donations_pkey")),
    )
    with op.batch_alter_table("donations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("donations_action_id_index"), ["action_id"], unique=False)

    op.create_table(
        "messages",
        sa.Column("id", ID, nullable=False),
        sa.Column("action_id", ID, nullable=False),
        sa.Column("message_content_id", ID, nullable=False),
        sa.Column("target_id", sa.Uuid(), nullable=False),
        sa.Column("sent", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("delivered", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("opened", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("clicked", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("dupe_rank", sa.Integer(), nullable=True),
        sa.Column("files", STRING_ARRAY, server_default=EMPTY_ARRAY, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["action_id"], ["actions.id"], name=op.f("messages_action_id_fkey"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["message_content_id"],
            ["message_contents.id"],
            name=op.f("messages_message_content_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_id"], ["targets.id"], name=op.f("messages_target_id_fkey"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("messages_pkey")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("messages_action_id_index"), ["action_id"], unique=False)
        batch_op.create_index(
            batch_op.f("messages_target_id_dupe_rank_sent_id_index"),
            ["target_id", "dupe_rank", "sent", "id"],
            unique=False,
        )


def downgrade() -> None:
    if not _sqlite():
        for column in ORG_BACKEND_COLUMNS:
            op.drop_constraint(op.f(f"orgs_{column}_fkey"), "orgs", type_="foreignkey")

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("messages_target_id_dupe_rank_sent_id_index"))
        batch_op.drop_index(batch_op.f("messages_action_id_index"))

    op.drop_table("messages")
    with op.batch_alter_table("donations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("donations_action_id_index"))

    op.drop_table("donations")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("contacts_supporter_id_org_id_index"))
        batch_op.drop_index(batch_op.f("contacts_org_id_index"))

    op.drop_table("contacts")
    with op.batch_alter_table("actions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("actions_supporter_id_index"))
        batch_op.drop_index(batch_op.f("actions_ref_index"))
        batch_op.drop_index(batch_op.f("actions_processing_status_id_index"))
        batch_op.drop_index(batch_op.f("actions_campaign_id_action_type_index"))
        batch_op.drop_index(batch_op.f("actions_action_page_id_index"))

    op.drop_table("actions")
    with op.batch_alter_table("target_emails", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("target_emails_target_id_index"))

    op.drop_table("target_emails")
    with op.batch_alter_table("supporters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("supporters_fingerprint_index"))
        batch_op.drop_index(batch_op.f("supporters_dupe_rank_index"))
        batch_op.drop_index(batch_op.f("supporters_campaign_id_fingerprint_index"))
        batch_op.drop_index(batch_op.f("supporters_action_page_id_index"))

    op.drop_table("supporters")
    with op.batch_alter_table("targets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("targets_external_id_index"))
        batch_op.drop_index(batch_op.f("targets_campaign_id_index"))

    op.drop_table("targets")
    with op.batch_alter_table("mtt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("mtt_campaign_id_index"))

    op.drop_table("mtt")
    with op.batch_alter_table("action_pages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("action_pages_org_id_index"))
        batch_op.drop_index(batch_op.f("action_pages_name_index"))
        batch_op.drop_index(batch_op.f("action_pages_campaign_id_index"))

    op.drop_table("action_pages")
    with op.batch_alter_table("users_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("users_tokens_user_id_index"))
        batch_op.drop_index(batch_op.f("users_tokens_context_token_index"))

    op.drop_table("users_tokens")
    with op.batch_alter_table("staffers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("staffers_user_id_index"))
        batch_op.drop_index(batch_op.f("staffers_org_id_user_id_index"))

    op.drop_table("staffers")
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("services_org_id_name_index"))

    op.drop_table("services")
    with op.batch_alter_table("public_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("public_keys_org_id_index"))

    op.drop_table("public_keys")
    with op.batch_alter_table("email_templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("email_templates_org_id_name_locale_index"))

    op.drop_table("email_templates")
    with op.batch_alter_table("confirms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("confirms_code_index"))

    op.drop_table("confirms")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("campaigns_start_date_index"))
        batch_op.drop_index(batch_op.f("campaigns_org_id_index"))
        batch_op.drop_index(batch_op.f("campaigns_org_id_external_id_index"))
        batch_op.drop_index(batch_op.f("campaigns_name_index"))
        batch_op.drop_index(batch_op.f("campaigns_end_date_index"))

    op.drop_table("campaigns")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("users_external_id_index"))
        batch_op.drop_index(batch_op.f("users_email_index"))

    op.drop_table("users")
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("sources_source_medium_campaign_content_location_index"))

    op.drop_table("sources")
    with op.batch_alter_table("orgs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("orgs_name_index"))

    op.drop_table("orgs")
    op.drop_table("message_contents")
    op.drop_table("audit_log")
