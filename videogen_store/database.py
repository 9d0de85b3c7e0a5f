"""The studio database: SQLite through SQLAlchemy 2 (typed ORM), migrated with Alembic.

It mirrors the data model of the original architecture (projects, sections, sentences,
characters, project cast, generation jobs). ``script.md`` stays the truth for script text; the
database mirrors it after every sync and records what the pipeline made for each sentence.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
from pydantic import Field, PrivateAttr
from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base of the studio tables."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[str]: JSON}


class Project(Base):
    """A video project (the brief's mirror)."""

    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    topic: Mapped[str] = mapped_column(Text, default="")
    target_duration: Mapped[float] = mapped_column(Float)  # minutes
    visual_style: Mapped[str] = mapped_column(String(64))
    voice: Mapped[str | None] = mapped_column(String(128), nullable=True)
    next_sentence_number: Mapped[int] = mapped_column(Integer, default=1)
    script_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now, onupdate=_now)

    sections: Mapped[list[Section]] = relationship(
        back_populates="project", cascade="all, delete-orphan", order_by="Section.order"
    )
    cast: Mapped[list[ProjectCast]] = relationship(
        back_populates="project", cascade="all, delete-orphan"
    )


class Section(Base):
    """A heading of the script."""

    __tablename__ = "sections"

    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(300))
    order: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)

    project: Mapped[Project] = relationship(back_populates="sections")
    sentences: Mapped[list[Sentence]] = relationship(
        back_populates="section", order_by="Sentence.order"
    )


class Sentence(Base):
    """One sentence: the unit every per-sentence asset is partitioned by."""

    __tablename__ = "sentences"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)  # the partition key
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    section_id: Mapped[str] = mapped_column(ForeignKey("sections.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    order: Mapped[int] = mapped_column(Integer)
    line: Mapped[int] = mapped_column(Integer, default=0)  # line in script.md
    image_prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    video_prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    camera_movement: Mapped[str | None] = mapped_column(String(16), nullable=True)
    motion_strength: Mapped[float | None] = mapped_column(Float, nullable=True)
    characters: Mapped[list[str]] = mapped_column(JSON, default=list)
    speaker: Mapped[str | None] = mapped_column(String(120), nullable=True)
    sentence_version: Mapped[str] = mapped_column(String(32))
    direction_version: Mapped[str] = mapped_column(String(32))
    # The versions last reported to Dagster as observations of `sentence` / `direction`.
    published_sentence_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    published_direction_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    audio_file: Mapped[str | None] = mapped_column(Text, nullable=True)
    audio_duration: Mapped[int | None] = mapped_column(Integer, nullable=True)  # milliseconds
    image_file: Mapped[str | None] = mapped_column(Text, nullable=True)
    video_file: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now, onupdate=_now)

    section: Mapped[Section] = relationship(back_populates="sentences")


class Character(Base):
    """A recurring person of the character library."""

    __tablename__ = "characters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    reference_images: Mapped[list[str]] = mapped_column(JSON, default=list)
    style_lora: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lora_strength: Mapped[float] = mapped_column(Float, default=1.0)
    voice: Mapped[str | None] = mapped_column(String(120), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now, onupdate=_now)


class ProjectCast(Base):
    """A character cast in a project."""

    __tablename__ = "project_cast"
    __table_args__ = (UniqueConstraint("project_id", "character_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    character_id: Mapped[int] = mapped_column(ForeignKey("characters.id"))

    project: Mapped[Project] = relationship(back_populates="cast")
    character: Mapped[Character] = relationship()


class GenerationJob(Base):
    """One generation attempt of one asset for one sentence (mirrors the Dagster run)."""

    __tablename__ = "generation_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sentence_id: Mapped[str] = mapped_column(
        ForeignKey("sentences.id", ondelete="CASCADE"), index=True
    )
    job_type: Mapped[str] = mapped_column(String(16))  # narration, keyframe, clip, ...
    status: Mapped[str] = mapped_column(String(16))  # queued, running, completed, failed
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    completed_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)


MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


_ENGINES: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    """One engine per URL per process, migrated to the newest schema on first use."""
    engine = _ENGINES.get(url)
    if engine is None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, json_serializer=lambda o: json.dumps(o, ensure_ascii=False))
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        migrate(engine)
        _ENGINES[url] = engine
    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to Alembic's head revision."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path}"


class StudioDatabase(dg.ConfigurableResource):
    """The studio database (projects, sections, sentences, characters, cast, jobs)."""

    url: str = Field(description="SQLAlchemy URL, e.g. sqlite:///studio/studio.db")

    _sessions: Any = PrivateAttr(default=None)

    @classmethod
    def for_studio(cls, root: Path) -> StudioDatabase:
        """The database of a studio root."""
        from videogen_domain.paths import database_path

        return cls(url=sqlite_url(database_path(root)))

    def _factory(self) -> sessionmaker[Session]:
        if self._sessions is None:
            self._sessions = sessionmaker(engine_for(self.url), expire_on_commit=False)
        return self._sessions

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self._factory()() as session, session.begin():
            yield session

    def sentence(self, sentence_id: str) -> Sentence | None:
        """One sentence row, or None."""
        with self.session() as s:
            return s.get(Sentence, sentence_id)

    def sentences(self, project: str) -> list[Sentence]:
        """A project's sentences in script order."""
        with self.session() as s:
            rows = s.scalars(
                select(Sentence).where(Sentence.project_id == project).order_by(Sentence.order)
            )
            return list(rows)

    def sections(self, project: str) -> list[Section]:
        """A project's sections in script order."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(Section).where(Section.project_id == project).order_by(Section.order)
                )
            )

    def record_output(self, sentence_id: str, **fields: Any) -> None:
        """Record what the pipeline made for a sentence (file paths, durations, status)."""
        allowed = {"audio_file", "audio_duration", "image_file", "video_file", "status"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"not a sentence output field: {sorted(unknown)}")
        with self.session() as s:
            row = s.get(Sentence, sentence_id)
            if row is None:  # deleted meanwhile: nothing to record
                return
            for key, value in fields.items():
                setattr(row, key, value)

    def record_job(
        self,
        *,
        sentence_id: str,
        job_type: str,
        status: str,
        run_id: str | None,
        error: str | None = None,
        started_at: dt.datetime | None = None,
    ) -> None:
        """Append a generation job record (ignored when the sentence no longer exists)."""
        with self.session() as s:
            if s.get(Sentence, sentence_id) is None:
                return
            s.add(
                GenerationJob(
                    sentence_id=sentence_id,
                    job_type=job_type,
                    status=status,
                    run_id=run_id,
                    error_message=error,
                    started_at=started_at,
                    completed_at=_now() if status in {"completed", "failed"} else None,
                )
            )
