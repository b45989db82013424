"""Tenant API keys and webhook secrets, idempotency keys and the callback outbox.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 21:35:10.612930
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_api_keys_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_index(op.f('ix_api_keys_prefix'), 'api_keys', ['prefix'], unique=False)
    op.create_index(op.f('ix_api_keys_tenant_id'), 'api_keys', ['tenant_id'], unique=False)
    op.create_table('webhook_secrets',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('secret', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_webhook_secrets_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_secrets'))
    )
    op.create_index(op.f('ix_webhook_secrets_tenant_id'), 'webhook_secrets', ['tenant_id'], unique=False)
    op.create_table('callback_outbox',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('webhook_id', sa.String(length=64), nullable=False),
    sa.Column('target_url', sa.Text(), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('state', sa.Enum('pending', 'delivered', 'dead', name='outbox_state'), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_callback_outbox_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callback_outbox')),
    sa.UniqueConstraint('webhook_id', name=op.f('uq_callback_outbox_webhook_id'))
    )
    op.create_index(op.f('ix_callback_outbox_job_id'), 'callback_outbox', ['job_id'], unique=False)
    op.create_index('ix_callback_outbox_state_next_attempt_at', 'callback_outbox', ['state', 'next_attempt_at'], unique=False)
    op.create_table('idempotency_keys',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('body_sha256', sa.String(length=64), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_idempotency_keys_job_id_jobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_idempotency_keys_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'key', name=op.f('pk_idempotency_keys'))
    )
    op.create_index(op.f('ix_idempotency_keys_created_at'), 'idempotency_keys', ['created_at'], unique=False)
    op.create_table('callback_attempts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('outbox_id', sa.Uuid(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['outbox_id'], ['callback_outbox.id'], name=op.f('fk_callback_attempts_outbox_id_callback_outbox'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callback_attempts'))
    )
    op.create_index(op.f('ix_callback_attempts_outbox_id'), 'callback_attempts', ['outbox_id'], unique=False)
    op.add_column('jobs', sa.Column('callback_url', sa.Text(), nullable=True))
    op.add_column('tenants', sa.Column('callback_url', sa.Text(), nullable=True))
    # The default fills existing tenants and is dropped so the model owns the default.
    op.add_column('tenants', sa.Column('allow_unsigned', sa.Boolean(), nullable=False,
                                       server_default=sa.false()))
    op.alter_column('tenants', 'allow_unsigned', server_default=None)
    op.add_column('tenants', sa.Column('intake_per_minute', sa.Integer(), nullable=True))
    op.add_column('tenants', sa.Column('max_queued_jobs', sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column('tenants', 'max_queued_jobs')
    op.drop_column('tenants', 'intake_per_minute')
    op.drop_column('tenants', 'allow_unsigned')
    op.drop_column('tenants', 'callback_url')
    op.drop_column('jobs', 'callback_url')
    op.drop_index(op.f('ix_callback_attempts_outbox_id'), table_name='callback_attempts')
    op.drop_table('callback_attempts')
    op.drop_index(op.f('ix_idempotency_keys_created_at'), table_name='idempotency_keys')
    op.drop_table('idempotency_keys')
    op.drop_index('ix_callback_outbox_state_next_attempt_at', table_name='callback_outbox')
    op.drop_index(op.f('ix_callback_outbox_job_id'), table_name='callback_outbox')
    op.drop_table('callback_outbox')
    op.drop_index(op.f('ix_webhook_secrets_tenant_id'), table_name='webhook_secrets')
    op.drop_table('webhook_secrets')
    op.drop_index(op.f('ix_api_keys_tenant_id'), table_name='api_keys')
    op.drop_index(op.f('ix_api_keys_prefix'), table_name='api_keys')
    op.drop_table('api_keys')
    sa.Enum(name='outbox_state').drop(op.get_bind(), checkfirst=True)
