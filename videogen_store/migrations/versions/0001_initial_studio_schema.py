"""initial studio schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 20:31:20.734406
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "characters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("reference_images", sa.JSON(), nullable=False),
        sa.Column("style_lora", sa.String(length=200), nullable=True),
        sa.Column("lora_strength", sa.Float(), nullable=False),
        sa.Column("voice", sa.String(length=120), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("target_duration", sa.Float(), nullable=False),
        sa.Column("visual_style", sa.String(length=64), nullable=False),
        sa.Column("voice", sa.String(length=128), nullable=True),
        sa.Column("next_sentence_number", sa.Integer(), nullable=False),
        sa.Column("script_sha256", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "project_cast",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=48), nullable=False),
        sa.Column("character_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["character_id"],
            ["characters.id"],
        ),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "character_id"),
    )
    op.create_table(
        "sections",
        sa.Column("id", sa.String(length=160), nullable=False),
        sa.Column("project_id", sa.String(length=48), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("order", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sections_project_id"), ["project_id"], unique=False)

    op.create_table(
        "sentences",
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("project_id", sa.String(length=48), nullable=False),
        sa.Column("section_id", sa.String(length=160), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("order", sa.Integer(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("image_prompt", sa.Text(), nullable=True),
        sa.Column("video_prompt", sa.Text(), nullable=True),
        sa.Column("camera_movement", sa.String(length=16), nullable=True),
        sa.Column("motion_strength", sa.Float(), nullable=True),
        sa.Column("characters", sa.JSON(), nullable=False),
        sa.Column("speaker", sa.String(length=120), nullable=True),
        sa.Column("sentence_version", sa.String(length=32), nullable=False),
        sa.Column("direction_version", sa.String(length=32), nullable=False),
        sa.Column("published_sentence_version", sa.String(length=32), nullable=True),
        sa.Column("published_direction_version", sa.String(length=32), nullable=True),
        sa.Column("audio_file", sa.Text(), nullable=True),
        sa.Column("audio_duration", sa.Integer(), nullable=True),
        sa.Column("image_file", sa.Text(), nullable=True),
        sa.Column("video_file", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["section_id"],
            ["sections.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sentences", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sentences_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sentences_section_id"), ["section_id"], unique=False)

    op.create_table(
        "generation_jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sentence_id", sa.String(length=80), nullable=False),
        sa.Column("job_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["sentence_id"], ["sentences.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("generation_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_generation_jobs_sentence_id"), ["sentence_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("generation_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_generation_jobs_sentence_id"))

    op.drop_table("generation_jobs")
    with op.batch_alter_table("sentences", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sentences_section_id"))
        batch_op.drop_index(batch_op.f("ix_sentences_project_id"))

    op.drop_table("sentences")
    with op.batch_alter_table("sections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sections_project_id"))

    op.drop_table("sections")
    op.drop_table("project_cast")
    op.drop_table("projects")
    op.drop_table("characters")
