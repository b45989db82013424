"""Alembic from code: the CLI, the demo and the tests upgrade the schema through here."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

# The migrations live beside the packages in the source tree, which an editable install
# (the documented one) keeps in place.
ROOT = Path(__file__).resolve().parent.parent


def alembic_config() -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["configure_logger"] = False
    return config


def upgrade(revision: str = "head") -> None:
    command.upgrade(alembic_config(), revision)


def downgrade(revision: str = "base") -> None:
    command.downgrade(alembic_config(), revision)
