"""Label Studio integration: project from the policy, push with pre-annotations, pull
annotations back as decisions, webhooks, outbox retries, inter-annotator agreement.

Entry points for other packages (import the submodules; this file imports nothing heavy):
- `training.labelstudio.project.setup(settings, ...)`
- `training.labelstudio.sync.push / pull / deliver / reconcile`
- `training.labelstudio.status.labelstudio_status(settings, engine)`
- `training.labelstudio.agreement.category_agreement(session, project_id=...)`
- `training.labelstudio.webhook.make_webhook_router(settings, engine)`
- `training.labelstudio.signing.signed_image_url(settings, item_id, ttl_s=...)`
"""
