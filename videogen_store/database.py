"""The studio database: SQLite through SQLAlchemy 2 (typed ORM), migrated with Alembic.

It mirrors the data model of the original architecture (projects, sections, sentences,
characters, project cast, generation jobs). ``script.md`` stays the truth for script text; the
database mirrors it after every sync and records what the pipeline made for each sentence.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
    delete,
    event,
    func,
    or_,
    select,
    update,
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

from videogen_domain.models import Directives
from videogen_domain.paths import database_path
from videogen_domain.project import ProjectBrief


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


@dataclass(frozen=True)
class SentenceInfo:
    """One sentence row, detached from the database session."""

    id: str
    project: str
    order: int
    line: int
    text: str
    section: str
    directives: Directives


_DIRECTIVE_COLUMNS = (
    Sentence.image_prompt,
    Sentence.video_prompt,
    Sentence.camera_movement,
    Sentence.motion_strength,
    Sentence.characters,
    Sentence.speaker,
)
"""The columns of a sentence's `Directives`."""

_INFO_COLUMNS = (
    Sentence.id,
    Sentence.project_id,
    Sentence.section_id,
    Sentence.order,
    Sentence.line,
    Sentence.text,
    *_DIRECTIVE_COLUMNS,
)
"""The columns a `SentenceInfo` is made of (read without loading whole rows: a long script's
rows as ORM objects took most of `sentence_infos`' time)."""


def _sentence_info(row: Any, section: str) -> SentenceInfo:
    """``row``: a `Sentence`, or a row of (at least) its `_INFO_COLUMNS`."""
    return SentenceInfo(
        id=row.id,
        project=row.project_id,
        order=row.order,
        line=row.line,
        text=row.text,
        section=section,
        directives=Directives(
            image_prompt=row.image_prompt,
            video_prompt=row.video_prompt,
            camera=row.camera_movement,  # type: ignore[arg-type]
            motion=row.motion_strength,
            characters=tuple(row.characters or ()),
            speaker=row.speaker,
        ),
    )


STORED_COLUMNS = (
    Sentence.id,
    Sentence.section_id,
    Sentence.text,
    Sentence.order,
    Sentence.line,
    *_DIRECTIVE_COLUMNS,
    Sentence.sentence_version,
    Sentence.direction_version,
)
"""What a sync reads of each stored sentence (`StoredScript`) and may change: the columns,
not whole ORM rows (loading and tracking thousands of those was most of a sync's time)."""


@dataclass(frozen=True)
class ScriptState:
    """What the last sync of a project's script left: its file hash and sentence versions."""

    has_project: bool
    script_sha256: str | None
    versions: list[tuple[str, str, str]]  # (id, sentence_version, direction_version), in order


@dataclass
class StoredScript:
    """A project's script as the database holds it, read in the transaction that replaces it."""

    next_sentence_number: int
    sentences: Sequence[Any]  # each a row of its `STORED_COLUMNS`, in script order
    section_ids: list[str]
    characters: list[Character]  # the library (the versions fold in what a sentence names)


@dataclass
class ScriptUpdate:
    """A project's script as it is to be stored (see `StudioDatabase.replace_script`)."""

    sections: list[tuple[str, str]]  # (id, title) in script order
    sentences: list[tuple[str, dict[str, Any]]]  # (id, column values) in script order
    next_sentence_number: int
    script_sha256: str | None


@dataclass(frozen=True)
class PublishedMark:
    """The versions of one sentence now reported to Dagster (None: that one is unchanged)."""

    id: str
    sentence_version: str | None = None
    direction_version: str | None = None


class StudioDatabase(dg.ConfigurableResource):
    """The studio database (projects, sections, sentences, characters, cast, jobs)."""

    url: str = Field(description="SQLAlchemy URL, e.g. sqlite:///studio/studio.db")

    _sessions: Any = PrivateAttr(default=None)

    @classmethod
    def for_studio(cls, root: Path) -> StudioDatabase:
        """The database of a studio root."""
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

    # --- sentences -------------------------------------------------------------------------

    def sentence_info(self, sentence_id: str) -> SentenceInfo | None:
        """One sentence with its section's title, or None when it is not in the script."""
        with self.session() as s:
            row = s.get(Sentence, sentence_id)
            if row is None:
                return None
            section = s.get(Section, row.section_id)
            return _sentence_info(row, section.title if section else "")

    def sentence_infos(self, project: str) -> list[SentenceInfo]:
        """A project's sentences with their sections' titles, in script order."""
        with self.session() as s:
            rows = s.execute(
                select(*_INFO_COLUMNS)
                .where(Sentence.project_id == project)
                .order_by(Sentence.order)
            ).all()
            sections = {
                sid: title
                for sid, title in s.execute(
                    select(Section.id, Section.title).where(Section.project_id == project)
                )
            }
            return [_sentence_info(r, sections.get(r.section_id, "")) for r in rows]

    def sentences_by_id(self, ids: Collection[str]) -> list[Sentence]:
        """The rows of these sentences (the ones still in a script)."""
        with self.session() as s:
            return list(s.scalars(select(Sentence).where(Sentence.id.in_(list(ids)))))

    def unpublished_sentences(self, project: str) -> list[Sentence]:
        """A project's sentences whose sentence or direction version was not yet reported to
        Dagster (after a one-sentence edit: one row)."""
        unreported = or_(
            Sentence.published_sentence_version.is_distinct_from(Sentence.sentence_version),
            Sentence.published_direction_version.is_distinct_from(Sentence.direction_version),
        )
        with self.session() as s:
            return list(
                s.scalars(select(Sentence).where(Sentence.project_id == project).where(unreported))
            )

    def mark_published(self, marks: Sequence[PublishedMark]) -> None:
        """Record the versions reported to Dagster, in one transaction."""
        values: list[dict[str, Any]] = []
        for mark in marks:
            row: dict[str, Any] = {"id": mark.id}
            if mark.sentence_version is not None:
                row["published_sentence_version"] = mark.sentence_version
            if mark.direction_version is not None:
                row["published_direction_version"] = mark.direction_version
            if len(row) > 1:
                values.append(row)
        if not values:
            return
        with self.session() as s:
            existing = set(
                s.scalars(select(Sentence.id).where(Sentence.id.in_([v["id"] for v in values])))
            )  # a sentence deleted meanwhile: nothing to mark
            values = [v for v in values if v["id"] in existing]
            if values:
                s.execute(update(Sentence), values)

    # --- the script ------------------------------------------------------------------------

    def upsert_project(self, brief: ProjectBrief) -> None:
        """Create or update the project's row from its brief."""
        with self.session() as s:
            row = s.get(Project, brief.name)
            if row is None:
                row = Project(id=brief.name, next_sentence_number=1)
                s.add(row)
            row.name = brief.title
            row.topic = brief.topic
            row.target_duration = brief.minutes
            row.visual_style = brief.style
            row.voice = brief.voice

    def script_state(self, project: str) -> ScriptState:
        """The hash of the script last synced and the sentences' versions, in script order."""
        with self.session() as s:
            row = s.get(Project, project)
            rows = s.execute(
                select(Sentence.id, Sentence.sentence_version, Sentence.direction_version)
                .where(Sentence.project_id == project)
                .order_by(Sentence.order)
            ).all()  # (the columns only: reading whole rows of a long script takes long)
        return ScriptState(
            has_project=row is not None,
            script_sha256=row.script_sha256 if row is not None else None,
            versions=[(r[0], r[1], r[2]) for r in rows],
        )

    def replace_script(
        self, project: str, plan: Callable[[StoredScript], ScriptUpdate]
    ) -> ScriptUpdate:
        """Store a project's new script in one transaction: ``plan`` gets what is stored and
        says what to store (sections and sentences in order; sentences and sections not named
        are deleted). The project's row must exist (`upsert_project`)."""
        with self.session() as s:
            row = s.get(Project, project)
            assert row is not None
            old_rows = s.execute(
                select(*STORED_COLUMNS)
                .where(Sentence.project_id == project)
                .order_by(Sentence.order)
            ).all()
            existing_secs = {
                sec.id: sec
                for sec in s.scalars(select(Section).where(Section.project_id == project))
            }
            new = plan(
                StoredScript(
                    next_sentence_number=row.next_sentence_number,
                    sentences=old_rows,
                    section_ids=list(existing_secs),
                    characters=list(s.scalars(select(Character))),
                )
            )
            for i, (sid, title) in enumerate(new.sections):
                sec = existing_secs.get(sid)
                if sec is None:
                    s.add(Section(id=sid, project_id=project, title=title, order=i))
                else:
                    sec.title, sec.order = title, i
            s.flush()
            by_id = {r.id: r._mapping for r in old_rows}
            changed: list[dict[str, Any]] = []
            now = _now()
            for sid, fields in new.sentences:
                old = by_id.get(sid)
                if old is None:
                    s.add(Sentence(id=sid, project_id=project, **fields))
                    continue
                values = {k: v for k, v in fields.items() if old[k] != v}
                if values:  # as the row's onupdate would: a changed row's time is now
                    changed.append({"id": sid, **values, "updated_at": now})
            if changed:
                s.execute(update(Sentence), changed)  # by primary key, only the changed rows
            keep = {sid for sid, _ in new.sentences}
            removed = [r.id for r in old_rows if r.id not in keep]
            if removed:
                s.execute(delete(Sentence).where(Sentence.id.in_(removed)))
            s.flush()
            used = {sid for sid, _ in new.sections}  # (built once: no n² scans)
            unused = [sid for sid in existing_secs if sid not in used]
            if unused:
                s.execute(delete(Section).where(Section.id.in_(unused)))
            row.next_sentence_number = new.next_sentence_number
            row.script_sha256 = new.script_sha256
        return new

    # --- the character library -------------------------------------------------------------

    def characters(self) -> list[Character]:
        """Every character of the library."""
        with self.session() as s:
            return list(s.scalars(select(Character)))

    def character_names(self) -> list[str]:
        """The names of the library's characters."""
        with self.session() as s:
            return list(s.scalars(select(Character.name)))

    def characters_stamp(self) -> str:
        """A stamp that changes whenever a library character is added, edited or removed."""
        with self.session() as s:
            count, latest = s.execute(
                select(func.count(Character.id), func.max(Character.updated_at))
            ).one()
        return f"{count}:{latest}"

    def reference_images_in_use(self) -> set[str]:
        """The reference images (studio-relative paths) some character uses."""
        with self.session() as s:
            return {p for refs in s.scalars(select(Character.reference_images)) for p in refs}

    def add_character(self, **fields: Any) -> Character:
        """Insert a character (raises sqlalchemy's IntegrityError when the name is taken)."""
        with self.session() as s:
            row = Character(**fields)
            s.add(row)
            s.flush()
            return row

    def update_character(self, character_id: int, **fields: Any) -> Character:
        """Change a character's columns (raises IntegrityError when a new name is taken)."""
        with self.session() as s:
            row = s.get(Character, character_id)
            if row is None:
                raise LookupError(f"no character with id {character_id}")
            for key, value in fields.items():
                setattr(row, key, value)
            s.flush()
            return row

    def remove_character(self, character_id: int) -> None:
        """Delete a character from the library."""
        with self.session() as s:
            row = s.get(Character, character_id)
            if row is not None:
                s.delete(row)

    def cast_projects(self) -> dict[int, set[str]]:
        """Character id -> the projects whose ``project_cast`` rows name it."""
        out: dict[int, set[str]] = {}
        with self.session() as s:
            for project, character in s.execute(
                select(ProjectCast.project_id, ProjectCast.character_id)
            ):
                out.setdefault(character, set()).add(project)
        return out

    def cast(self, project: str) -> list[Character]:
        """The characters of a project's ``project_cast`` rows."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(Character).join(ProjectCast).where(ProjectCast.project_id == project)
                )
            )

    def link_cast(self, brief: ProjectBrief, character_id: int) -> bool:
        """Cast a character in a project (its row made from ``brief`` when missing); True when
        the link is new."""
        with self.session() as s:
            if s.get(Project, brief.name) is None:
                s.add(
                    Project(
                        id=brief.name,
                        name=brief.title,
                        topic=brief.topic,
                        target_duration=brief.minutes,
                        visual_style=brief.style,
                        voice=brief.voice,
                        next_sentence_number=1,
                    )
                )
                s.flush()
            linked = s.scalar(
                select(ProjectCast).where(
                    ProjectCast.project_id == brief.name, ProjectCast.character_id == character_id
                )
            )
            if linked is not None:
                return False
            s.add(ProjectCast(project_id=brief.name, character_id=character_id))
            return True

    def unlink_cast(self, project: str, character_id: int) -> int:
        """Take a character out of a project's ``project_cast`` rows; how many were removed."""
        with self.session() as s:
            links = list(
                s.scalars(
                    select(ProjectCast).where(
                        ProjectCast.project_id == project, ProjectCast.character_id == character_id
                    )
                )
            )
            for link in links:
                s.delete(link)
            return len(links)
