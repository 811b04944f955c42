//! The SQL both backends share. The two schemas have the same tables, columns and names, and
//! both drivers take `$N` placeholders, so one body of code serves both; the macro instantiates
//! it for each concrete sqlx database type. Each backend provides, as inherent items:
//! `BACKEND`, `MIGRATOR`, `CLAIM_JOBS_SQL`, `LOCK_PIPELINE_SQL`, `LOCK_LIVE_PIPELINE_SQL`,
//! `LOCK_JOB_SQL`, `begin_write()`, `notify_jobs(&mut tx)` and `clock(executor)`.
//!
//! Concurrency: every write transaction that touches a pipeline first locks its row
//! (`SELECT … FOR UPDATE` on Postgres; SQLite's `BEGIN IMMEDIATE` serialises writers anyway), so
//! transitions of one pipeline never interleave and locks are always taken pipeline row first.
//! Job rows are locked before their pipeline only by job-finishing paths, which touch no other
//! job's row.

macro_rules! impl_sql_store {
    ($store:ty, $db:ty) => {
        type Tx = sqlx::Transaction<'static, $db>;

        impl $store {
            async fn insert_event(
                tx: &mut Tx,
                event: crate::store::sql_store::Event<'_>,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "INSERT INTO events (pipeline_id, stage_ordinal, kind, from_state, to_state, actor, message, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(event.pipeline_id)
                .bind(event.stage_ordinal)
                .bind(event.kind)
                .bind(event.from_state)
                .bind(event.to_state)
                .bind(event.actor)
                .bind(event.message)
                .bind(crate::store::now())
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// Moves a pipeline to `to` when the state machine allows it, recording the event.
            /// Returns the previous state, or `None` when nothing changed.
            async fn transition_pipeline(
                tx: &mut Tx,
                id: &str,
                to: PipelineState,
                actor: &str,
                message: Option<&str>,
            ) -> Result<Option<PipelineState>, StoreError> {
                let current: Option<String> =
                    sqlx::query_scalar("SELECT state FROM pipelines WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut **tx)
                        .await?;
                let Some(current) = current else {
                    return Err(StoreError::NotFound(format!("pipeline {id}")));
                };
                let from: PipelineState = current.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))?;
                if from == to || !from.can_transition_to(to) {
                    return Ok(None);
                }
                let error = if to == PipelineState::Failed { message } else { None };
                let changed = sqlx::query(
                    "UPDATE pipelines SET state = $2, last_error = $4, updated_at = $5 WHERE id = $1 AND state = $3",
                )
                .bind(id)
                .bind(to.as_str())
                .bind(from.as_str())
                .bind(error)
                .bind(crate::store::now())
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if changed == 0 {
                    return Err(StoreError::Conflict(format!("pipeline {id} changed concurrently")));
                }
                Self::insert_event(tx, crate::store::sql_store::Event {
                    pipeline_id: id,
                    stage_ordinal: None,
                    kind: "pipeline.state_changed",
                    from_state: Some(from.as_str()),
                    to_state: Some(to.as_str()),
                    actor,
                    message,
                })
                .await?;
                Ok(Some(from))
            }

            /// Moves a stage of the given version to `to` when allowed, recording the event.
            async fn transition_stage(
                tx: &mut Tx,
                key: &StageKey,
                to: StageState,
                actor: &str,
                message: Option<&str>,
            ) -> Result<Option<StageState>, StoreError> {
                let current: Option<String> = sqlx::query_scalar(
                    "SELECT state FROM stages WHERE pipeline_id = $1 AND ordinal = $2 AND version = $3",
                )
                .bind(&key.pipeline_id)
                .bind(key.ordinal)
                .bind(key.version)
                .fetch_optional(&mut **tx)
                .await?;
                let Some(current) = current else { return Ok(None) };
                let from: StageState = current.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))?;
                if from == to || !from.can_transition_to(to) {
                    return Ok(None);
                }
                let error = if to == StageState::Failed { message } else { None };
                let changed = sqlx::query(
                    "UPDATE stages SET state = $4, last_error = $6, updated_at = $7 \
                     WHERE pipeline_id = $1 AND ordinal = $2 AND version = $3 AND state = $5",
                )
                .bind(&key.pipeline_id)
                .bind(key.ordinal)
                .bind(key.version)
                .bind(to.as_str())
                .bind(from.as_str())
                .bind(error)
                .bind(crate::store::now())
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if changed == 0 {
                    return Err(StoreError::Conflict(format!(
                        "stage {} of pipeline {} changed concurrently",
                        key.ordinal, key.pipeline_id
                    )));
                }
                Self::insert_event(tx, crate::store::sql_store::Event {
                    pipeline_id: &key.pipeline_id,
                    stage_ordinal: Some(key.ordinal),
                    kind: "stage.state_changed",
                    from_state: Some(from.as_str()),
                    to_state: Some(to.as_str()),
                    actor,
                    message,
                })
                .await?;
                Ok(Some(from))
            }

            /// Locks the pipeline's row for the rest of the transaction.
            async fn lock_pipeline(tx: &mut Tx, pipeline_id: &str) -> Result<Option<PipelineRecord>, StoreError> {
                Ok(sqlx::query_as(Self::LOCK_PIPELINE_SQL).bind(pipeline_id).fetch_optional(&mut **tx).await?)
            }

            /// Locks the pipeline and tells whether deploy work still matters: it stops once the
            /// pipeline is being torn down.
            async fn lock_deployable(tx: &mut Tx, pipeline_id: &str) -> Result<bool, StoreError> {
                let pipeline = Self::lock_pipeline(tx, pipeline_id).await?;
                Ok(pipeline.is_some_and(|p| !matches!(p.state, PipelineState::Deleting | PipelineState::Deleted)))
            }

            async fn insert_job(tx: &mut Tx, job: &NewJob) -> Result<JobRecord, StoreError> {
                let now = crate::store::now();
                let inserted: Option<JobRecord> = sqlx::query_as(
                    "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, run_at, idempotency_key, \
                     pipeline_id, stage_ordinal, created_at, updated_at) \
                     VALUES ($1, $2, $3, 'queued', 0, $4, $5, $6, $7, $8, $9, $9) \
                     ON CONFLICT (idempotency_key) DO NOTHING RETURNING *",
                )
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(&job.kind)
                .bind(sqlx::types::Json(&job.payload))
                .bind(job.max_attempts)
                .bind(job.run_at)
                .bind(&job.idempotency_key)
                .bind(&job.pipeline_id)
                .bind(job.stage_ordinal)
                .bind(now)
                .fetch_optional(&mut **tx)
                .await?;
                if let Some(job) = inserted {
                    Self::notify_jobs(tx).await?;
                    return Ok(job);
                }
                // Idempotency key seen before: the earlier job stands.
                Ok(sqlx::query_as("SELECT * FROM jobs WHERE idempotency_key = $1")
                    .bind(&job.idempotency_key)
                    .fetch_one(&mut **tx)
                    .await?)
            }

            async fn insert_stage_job(
                tx: &mut Tx,
                template: &JobTemplate,
                pipeline_id: &str,
                ordinal: Option<i32>,
                version: i64,
            ) -> Result<JobRecord, StoreError> {
                Self::insert_job_with(tx, template, pipeline_id, ordinal, serde_json::json!({ "version": version })).await
            }

            async fn insert_job_with(
                tx: &mut Tx,
                template: &JobTemplate,
                pipeline_id: &str,
                ordinal: Option<i32>,
                payload: serde_json::Value,
            ) -> Result<JobRecord, StoreError> {
                Self::insert_job(tx, &NewJob {
                    kind: template.kind.clone(),
                    payload,
                    max_attempts: template.max_attempts,
                    run_at: crate::store::now(),
                    idempotency_key: None,
                    pipeline_id: Some(pipeline_id.to_string()),
                    stage_ordinal: ordinal,
                })
                .await
            }

            async fn cancel_queued_jobs(tx: &mut Tx, pipeline_id: &str) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "UPDATE jobs SET status = 'cancelled', updated_at = $2 WHERE pipeline_id = $1 AND status = 'queued'",
                )
                .bind(pipeline_id)
                .bind(crate::store::now())
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// What a permanently failed job means for its pipeline: the stage it was deploying
            /// and the pipeline fail, with the reason.
            async fn apply_job_failure(tx: &mut Tx, job: &JobRecord, error: &str) -> Result<(), StoreError> {
                let Some(pipeline_id) = job.pipeline_id.as_deref() else { return Ok(()) };
                let version = job.payload.0.get("version").and_then(|v| v.as_i64());
                let current = Self::lock_pipeline(tx, pipeline_id).await?.map(|p| p.version);
                if current.is_none() || (version.is_some() && version != current) {
                    return Ok(()); // superseded by a newer version: nothing to fail
                }
                let message = format!("job {} ({}) failed: {error}", job.id, job.kind);
                if let (Some(ordinal), Some(version)) = (job.stage_ordinal, current) {
                    let key = StageKey { pipeline_id: pipeline_id.to_string(), ordinal, version };
                    Self::transition_stage(tx, &key, StageState::Failed, "system", Some(&message)).await?;
                }
                Self::transition_pipeline(tx, pipeline_id, PipelineState::Failed, "system", Some(&message)).await?;
                Ok(())
            }

            async fn provision_once(
                &self,
                new: &NewPipeline,
                job: &JobTemplate,
            ) -> Result<Provisioned, StoreError> {
                let now = crate::store::now();
                let mut tx = self.begin_write().await?;
                let existing: Option<PipelineRecord> = sqlx::query_as(Self::LOCK_LIVE_PIPELINE_SQL)
                    .bind(&new.pipeline_type)
                    .bind(&new.name)
                    .fetch_optional(&mut *tx)
                    .await?;
                let (record, created) = match existing {
                    Some(old) => {
                        if !old.state.accepts_update() {
                            return Err(StoreError::Conflict(format!(
                                "pipeline {} is {}; wait until it is deleted, then provision again",
                                old.id, old.state
                            )));
                        }
                        let updated: PipelineRecord = sqlx::query_as(
                            "UPDATE pipelines SET spec = $2, request = $3, target = $4, version = version + 1, \
                             updated_at = $5 WHERE id = $1 RETURNING *",
                        )
                        .bind(&old.id)
                        .bind(sqlx::types::Json(&new.spec))
                        .bind(sqlx::types::Json(&new.request))
                        .bind(&new.target)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?;
                        Self::insert_event(&mut tx, crate::store::sql_store::Event {
                            pipeline_id: &old.id,
                            stage_ordinal: None,
                            kind: "pipeline.updated",
                            from_state: None,
                            to_state: None,
                            actor: &new.actor,
                            message: Some(&format!("re-provisioned as version {}", updated.version)),
                        })
                        .await?;
                        Self::transition_pipeline(&mut tx, &old.id, PipelineState::Pending, &new.actor, None).await?;
                        Self::cancel_queued_jobs(&mut tx, &old.id).await?;
                        sqlx::query("DELETE FROM stages WHERE pipeline_id = $1")
                            .bind(&old.id)
                            .execute(&mut *tx)
                            .await?;
                        (updated, false)
                    }
                    None => {
                        let inserted: PipelineRecord = sqlx::query_as(
                            "INSERT INTO pipelines (id, name, pipeline_type, target, spec, request, state, version, \
                             created_by, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, 'pending', 1, $7, $8, $8) RETURNING *",
                        )
                        .bind(&new.id)
                        .bind(&new.name)
                        .bind(&new.pipeline_type)
                        .bind(&new.target)
                        .bind(sqlx::types::Json(&new.spec))
                        .bind(sqlx::types::Json(&new.request))
                        .bind(&new.actor)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?;
                        Self::insert_event(&mut tx, crate::store::sql_store::Event {
                            pipeline_id: &new.id,
                            stage_ordinal: None,
                            kind: "pipeline.created",
                            from_state: None,
                            to_state: Some("pending"),
                            actor: &new.actor,
                            message: None,
                        })
                        .await?;
                        (inserted, true)
                    }
                };

                for (ordinal, stage) in new.stages.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO stages (pipeline_id, ordinal, environment, state, requires_approval, params, \
                         version, updated_at) VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7)",
                    )
                    .bind(&record.id)
                    .bind(ordinal as i32)
                    .bind(&stage.environment)
                    .bind(stage.requires_approval)
                    .bind(sqlx::types::Json(&stage.params))
                    .bind(record.version)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }

                // Endpoints the new version no longer names stop existing; the ones it keeps go
                // on serving the previous model until the new stage deploys.
                let kept: Vec<(String, String)> =
                    new.endpoints.iter().map(|e| (e.environment.clone(), e.name.clone())).collect();
                let owned: Vec<(String, String)> =
                    sqlx::query_as("SELECT environment, name FROM endpoints WHERE pipeline_id = $1")
                        .bind(&record.id)
                        .fetch_all(&mut *tx)
                        .await?;
                for (environment, name) in owned.iter().filter(|e| !kept.contains(e)) {
                    sqlx::query("DELETE FROM endpoints WHERE environment = $1 AND name = $2")
                        .bind(environment)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                }
                for endpoint in &new.endpoints {
                    let reserved = sqlx::query(
                        "INSERT INTO endpoints (environment, name, pipeline_id, stage_ordinal, state, config, revision, \
                         created_at, updated_at) VALUES ($1, $2, $3, $4, 'creating', $5, 0, $6, $6) \
                         ON CONFLICT (environment, name) DO UPDATE SET stage_ordinal = excluded.stage_ordinal, \
                         updated_at = excluded.updated_at WHERE endpoints.pipeline_id = excluded.pipeline_id",
                    )
                    .bind(&endpoint.environment)
                    .bind(&endpoint.name)
                    .bind(&record.id)
                    .bind(endpoint.stage_ordinal)
                    .bind(sqlx::types::Json(serde_json::json!({})))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if reserved == 0 {
                        return Err(StoreError::Conflict(format!(
                            "endpoint {:?} in environment {:?} belongs to another pipeline",
                            endpoint.name, endpoint.environment
                        )));
                    }
                }

                Self::insert_stage_job(&mut tx, job, &record.id, Some(0), record.version).await?;
                let record: PipelineRecord = sqlx::query_as("SELECT * FROM pipelines WHERE id = $1")
                    .bind(&record.id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                self.wake.notify_waiters();
                Ok(if created { Provisioned::Created(record) } else { Provisioned::Updated(record) })
            }
        }

        #[async_trait::async_trait]
        impl crate::store::Store for $store {
            fn backend(&self) -> Backend {
                Self::BACKEND
            }

            fn job_wakeup(&self) -> std::sync::Arc<tokio::sync::Notify> {
                self.wake.clone()
            }

            async fn migrate(&self) -> Result<(), StoreError> {
                Self::MIGRATOR.run(&self.pool).await?;
                Ok(())
            }

            async fn pending_migrations(&self) -> Result<usize, StoreError> {
                // No bookkeeping table yet means nothing was applied.
                let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(&self.pool)
                    .await
                    .unwrap_or_default();
                Ok(Self::MIGRATOR.iter().filter(|m| !applied.contains(&m.version)).count())
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                self.pool.close().await;
            }

            async fn provision(&self, new: NewPipeline, job: JobTemplate) -> Result<Provisioned, StoreError> {
                // Two first-time provisions of one name race on the unique index; the loser
                // retries and finds the winner's row, so it becomes an update.
                let mut attempt = 0;
                loop {
                    match self.provision_once(&new, &job).await {
                        Err(StoreError::Database(sqlx::Error::Database(e)))
                            if e.is_unique_violation() && attempt < 2 =>
                        {
                            attempt += 1;
                        }
                        other => return other,
                    }
                }
            }

            async fn pipeline(&self, id: &str) -> Result<Option<PipelineRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM pipelines WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn pipeline_by_external_id(&self, external_id: &str) -> Result<Option<PipelineRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM pipelines WHERE external_id = $1")
                    .bind(external_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn set_external_id(&self, pipeline_id: &str, external_id: &str) -> Result<(), StoreError> {
                let changed = sqlx::query(
                    "UPDATE pipelines SET external_id = $2 WHERE id = $1 AND (external_id IS NULL OR external_id = $2)",
                )
                .bind(pipeline_id)
                .bind(external_id)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if changed == 0 {
                    return Err(StoreError::Conflict(format!(
                        "pipeline {pipeline_id} already has another external id than {external_id}"
                    )));
                }
                Ok(())
            }

            async fn live_pipeline(
                &self,
                pipeline_type: &str,
                name: &str,
            ) -> Result<Option<PipelineRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM pipelines WHERE pipeline_type = $1 AND name = $2 AND state <> 'deleted'",
                )
                .bind(pipeline_type)
                .bind(name)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_pipelines(&self, filter: &PipelineFilter) -> Result<Vec<PipelineRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM pipelines WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR pipeline_type = $2) \
                     AND ($3 IS NULL OR id > $3) ORDER BY id LIMIT $4",
                )
                .bind(filter.state.map(|s| s.as_str()))
                .bind(filter.pipeline_type.as_deref())
                .bind(filter.after_id.as_deref())
                .bind(filter.limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn stages(&self, pipeline_id: &str) -> Result<Vec<StageRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM stages WHERE pipeline_id = $1 ORDER BY ordinal")
                    .bind(pipeline_id)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn events(
                &self,
                pipeline_id: &str,
                after_id: Option<i64>,
                limit: i64,
            ) -> Result<Vec<EventRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM events WHERE pipeline_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                )
                .bind(pipeline_id)
                .bind(after_id.unwrap_or(0))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn begin_stage(&self, key: &StageKey) -> Result<Option<StageRecord>, StoreError> {
                let mut tx = self.begin_write().await?;
                if !Self::lock_deployable(&mut tx, &key.pipeline_id).await? {
                    return Ok(None);
                }
                let stage: Option<StageRecord> = sqlx::query_as(
                    "SELECT * FROM stages WHERE pipeline_id = $1 AND ordinal = $2 AND version = $3",
                )
                .bind(&key.pipeline_id)
                .bind(key.ordinal)
                .bind(key.version)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(stage) = stage else { return Ok(None) };
                match stage.state {
                    StageState::Pending => {
                        Self::transition_stage(&mut tx, key, StageState::Deploying, "system", None).await?;
                    }
                    // Approved stages are already deploying; a retried job finds its own stage so.
                    StageState::Deploying => {}
                    _ => return Ok(None),
                }
                Self::transition_pipeline(&mut tx, &key.pipeline_id, PipelineState::Provisioning, "system", None)
                    .await?;
                let stage = sqlx::query_as(
                    "SELECT * FROM stages WHERE pipeline_id = $1 AND ordinal = $2 AND version = $3",
                )
                .bind(&key.pipeline_id)
                .bind(key.ordinal)
                .bind(key.version)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some(stage))
            }

            async fn complete_stage(
                &self,
                key: &StageKey,
                outputs: serde_json::Value,
                next_job: JobTemplate,
            ) -> Result<Option<PipelineRecord>, StoreError> {
                let mut tx = self.begin_write().await?;
                if !Self::lock_deployable(&mut tx, &key.pipeline_id).await? {
                    return Ok(None);
                }
                let changed = sqlx::query(
                    "UPDATE stages SET outputs = $4 WHERE pipeline_id = $1 AND ordinal = $2 AND version = $3 \
                     AND state = 'deploying'",
                )
                .bind(&key.pipeline_id)
                .bind(key.ordinal)
                .bind(key.version)
                .bind(sqlx::types::Json(&outputs))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed == 0 {
                    return Ok(None);
                }
                Self::transition_stage(&mut tx, key, StageState::Deployed, "system", None).await?;
                let next: Option<StageRecord> = sqlx::query_as(
                    "SELECT * FROM stages WHERE pipeline_id = $1 AND ordinal = $2 AND version = $3",
                )
                .bind(&key.pipeline_id)
                .bind(key.ordinal + 1)
                .bind(key.version)
                .fetch_optional(&mut *tx)
                .await?;
                match next {
                    Some(next) if next.requires_approval => {
                        let next_key = StageKey { ordinal: next.ordinal, ..key.clone() };
                        let message = format!("waiting for approval to deploy to {}", next.environment);
                        Self::transition_stage(&mut tx, &next_key, StageState::AwaitingApproval, "system", Some(&message))
                            .await?;
                        Self::transition_pipeline(
                            &mut tx,
                            &key.pipeline_id,
                            PipelineState::AwaitingApproval,
                            "system",
                            Some(&message),
                        )
                        .await?;
                    }
                    Some(next) => {
                        Self::insert_stage_job(&mut tx, &next_job, &key.pipeline_id, Some(next.ordinal), key.version)
                            .await?;
                    }
                    None => {
                        Self::transition_pipeline(&mut tx, &key.pipeline_id, PipelineState::Active, "system", None)
                            .await?;
                    }
                }
                let record = sqlx::query_as("SELECT * FROM pipelines WHERE id = $1")
                    .bind(&key.pipeline_id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                self.wake.notify_waiters();
                Ok(Some(record))
            }

            async fn decide_approval(
                &self,
                pipeline_id: &str,
                ordinal: i32,
                decision: &ApprovalDecision,
                job: JobTemplate,
            ) -> Result<PipelineRecord, StoreError> {
                let mut tx = self.begin_write().await?;
                let pipeline = Self::lock_pipeline(&mut tx, pipeline_id).await?;
                let pipeline = pipeline.ok_or_else(|| StoreError::NotFound(format!("pipeline {pipeline_id}")))?;
                let stage: Option<StageRecord> = sqlx::query_as(
                    "SELECT * FROM stages WHERE pipeline_id = $1 AND ordinal = $2 AND version = $3",
                )
                .bind(pipeline_id)
                .bind(ordinal)
                .bind(pipeline.version)
                .fetch_optional(&mut *tx)
                .await?;
                let stage = stage.ok_or_else(|| StoreError::NotFound(format!("stage {ordinal} of pipeline {pipeline_id}")))?;
                if stage.state != StageState::AwaitingApproval {
                    return Err(StoreError::Conflict(format!(
                        "stage {} ({}) is {}, not awaiting approval",
                        ordinal, stage.environment, stage.state
                    )));
                }
                let key = StageKey { pipeline_id: pipeline_id.to_string(), ordinal, version: pipeline.version };
                let now = crate::store::now();
                let (kind, stage_to, pipeline_to) = if decision.approve {
                    ("stage.approved", StageState::Deploying, PipelineState::Provisioning)
                } else {
                    ("stage.rejected", StageState::Rejected, PipelineState::Rejected)
                };
                Self::insert_event(&mut tx, crate::store::sql_store::Event {
                    pipeline_id,
                    stage_ordinal: Some(ordinal),
                    kind,
                    from_state: None,
                    to_state: None,
                    actor: &decision.actor,
                    message: decision.comment.as_deref(),
                })
                .await?;
                Self::transition_stage(&mut tx, &key, stage_to, &decision.actor, decision.comment.as_deref()).await?;
                if decision.approve {
                    sqlx::query(
                        "UPDATE stages SET approved_by = $3, approved_at = $4 WHERE pipeline_id = $1 AND ordinal = $2",
                    )
                    .bind(pipeline_id)
                    .bind(ordinal)
                    .bind(&decision.actor)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                // The decision travels with the job: a target passes it on (aws: the approval's
                // summary names the approver).
                let payload = serde_json::json!({
                    "version": pipeline.version,
                    "approve": decision.approve,
                    "actor": decision.actor,
                    "comment": decision.comment,
                });
                Self::insert_job_with(&mut tx, &job, pipeline_id, Some(ordinal), payload).await?;
                Self::transition_pipeline(&mut tx, pipeline_id, pipeline_to, &decision.actor, decision.comment.as_deref())
                    .await?;
                let record = sqlx::query_as("SELECT * FROM pipelines WHERE id = $1")
                    .bind(pipeline_id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                self.wake.notify_waiters();
                Ok(record)
            }

            async fn request_delete(
                &self,
                pipeline_id: &str,
                actor: &str,
                job: JobTemplate,
            ) -> Result<PipelineRecord, StoreError> {
                let mut tx = self.begin_write().await?;
                let pipeline = match Self::lock_pipeline(&mut tx, pipeline_id).await? {
                    Some(p) if p.state != PipelineState::Deleted => p,
                    _ => return Err(StoreError::NotFound(format!("pipeline {pipeline_id}"))),
                };
                if pipeline.state != PipelineState::Deleting {
                    Self::transition_pipeline(&mut tx, pipeline_id, PipelineState::Deleting, actor, None).await?;
                    Self::cancel_queued_jobs(&mut tx, pipeline_id).await?;
                    Self::insert_stage_job(&mut tx, &job, pipeline_id, None, pipeline.version).await?;
                }
                let record = sqlx::query_as("SELECT * FROM pipelines WHERE id = $1")
                    .bind(pipeline_id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                self.wake.notify_waiters();
                Ok(record)
            }

            async fn complete_delete(&self, pipeline_id: &str) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                Self::lock_pipeline(&mut tx, pipeline_id).await?;
                sqlx::query("DELETE FROM endpoints WHERE pipeline_id = $1")
                    .bind(pipeline_id)
                    .execute(&mut *tx)
                    .await?;
                Self::transition_pipeline(&mut tx, pipeline_id, PipelineState::Deleted, "system", None).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn endpoint(&self, environment: &str, name: &str) -> Result<Option<EndpointRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM endpoints WHERE environment = $1 AND name = $2")
                    .bind(environment)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn list_endpoints(&self) -> Result<Vec<EndpointRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM endpoints ORDER BY environment, name")
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn activate_endpoint(
                &self,
                key: &StageKey,
                environment: &str,
                name: &str,
                config: serde_json::Value,
            ) -> Result<EndpointRecord, StoreError> {
                let mut tx = self.begin_write().await?;
                Self::lock_pipeline(&mut tx, &key.pipeline_id).await?;
                let updated: Option<EndpointRecord> = sqlx::query_as(
                    "UPDATE endpoints SET state = 'in_service', config = $4, revision = revision + 1, updated_at = $5 \
                     WHERE environment = $1 AND name = $2 AND pipeline_id = $3 \
                     AND EXISTS (SELECT 1 FROM pipelines p WHERE p.id = $3 AND p.version = $6) RETURNING *",
                )
                .bind(environment)
                .bind(name)
                .bind(&key.pipeline_id)
                .bind(sqlx::types::Json(&config))
                .bind(crate::store::now())
                .bind(key.version)
                .fetch_optional(&mut *tx)
                .await?;
                let updated = updated.ok_or_else(|| {
                    StoreError::Conflict(format!(
                        "endpoint {name:?} in {environment:?} is no longer reserved for pipeline {} version {}",
                        key.pipeline_id, key.version
                    ))
                })?;
                Self::insert_event(&mut tx, crate::store::sql_store::Event {
                    pipeline_id: &key.pipeline_id,
                    stage_ordinal: Some(key.ordinal),
                    kind: "endpoint.in_service",
                    from_state: None,
                    to_state: Some("in_service"),
                    actor: "system",
                    message: Some(&format!("endpoint {name} ({environment}) revision {}", updated.revision)),
                })
                .await?;
                tx.commit().await?;
                Ok(updated)
            }

            async fn enqueue_job(&self, job: NewJob) -> Result<JobRecord, StoreError> {
                let mut tx = self.begin_write().await?;
                let record = Self::insert_job(&mut tx, &job).await?;
                tx.commit().await?;
                self.wake.notify_waiters();
                Ok(record)
            }

            async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM jobs WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn claim_jobs(
                &self,
                worker: &str,
                limit: i64,
                lease: std::time::Duration,
            ) -> Result<Vec<JobRecord>, StoreError> {
                let mut tx = self.begin_write().await?;
                let now = Self::clock(&mut *tx).await?;
                let jobs = sqlx::query_as(Self::CLAIM_JOBS_SQL)
                    .bind(worker)
                    .bind(crate::store::lease_until(now, lease))
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(jobs)
            }

            async fn heartbeat_job(
                &self,
                job_id: &str,
                worker: &str,
                lease: std::time::Duration,
            ) -> Result<bool, StoreError> {
                let now = Self::clock(&self.pool).await?;
                let changed = sqlx::query(
                    "UPDATE jobs SET lease_until = $3, updated_at = $4 WHERE id = $1 AND locked_by = $2 AND status = 'running'",
                )
                .bind(job_id)
                .bind(worker)
                .bind(crate::store::lease_until(now, lease))
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(changed == 1)
            }

            async fn finish_job(&self, job_id: &str, worker: &str, finish: JobFinish) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                let job: Option<JobRecord> =
                    sqlx::query_as(Self::LOCK_JOB_SQL).bind(job_id).bind(worker).fetch_optional(&mut *tx).await?;
                let Some(job) = job else { return Ok(false) };
                let now = crate::store::now();
                let (status, attempts, run_at, error) = match &finish {
                    JobFinish::Succeeded => (job_status::SUCCEEDED, job.attempts, job.run_at, None),
                    // Progress: the attempt budget is for consecutive failures, not for waiting.
                    JobFinish::Reschedule { run_at } => (job_status::QUEUED, 0, *run_at, None),
                    JobFinish::Retry { run_at, error } if job.attempts + 1 < job.max_attempts => {
                        (job_status::QUEUED, job.attempts + 1, *run_at, Some(error.as_str()))
                    }
                    JobFinish::Retry { error, .. } => (job_status::FAILED, job.attempts + 1, job.run_at, Some(error.as_str())),
                    JobFinish::Fail { error } => (job_status::FAILED, job.attempts + 1, job.run_at, Some(error.as_str())),
                };
                let changed = sqlx::query(
                    "UPDATE jobs SET status = $3, attempts = $4, run_at = $5, last_error = COALESCE($6, last_error), \
                     locked_by = NULL, lease_until = NULL, updated_at = $7 WHERE id = $1 AND locked_by = $2",
                )
                .bind(job_id)
                .bind(worker)
                .bind(status)
                .bind(attempts)
                .bind(run_at)
                .bind(error)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed == 0 {
                    return Ok(false);
                }
                if status == job_status::FAILED {
                    Self::apply_job_failure(&mut tx, &job, error.unwrap_or("failed")).await?;
                }
                if status == job_status::QUEUED {
                    Self::notify_jobs(&mut tx).await?;
                }
                tx.commit().await?;
                if status == job_status::QUEUED {
                    self.wake.notify_waiters();
                }
                Ok(true)
            }

            async fn reap_expired_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
                let mut tx = self.begin_write().await?;
                let now = Self::clock(&mut *tx).await?;
                let reason = "lease expired: the worker stopped or lost contact with the database";
                let failed: Vec<JobRecord> = sqlx::query_as(
                    "UPDATE jobs SET status = 'failed', attempts = attempts + 1, locked_by = NULL, lease_until = NULL, \
                     last_error = $2, updated_at = $1 \
                     WHERE status = 'running' AND lease_until < $1 AND attempts + 1 >= max_attempts RETURNING *",
                )
                .bind(now)
                .bind(format!("{reason} (attempts used up)"))
                .fetch_all(&mut *tx)
                .await?;
                let requeued = sqlx::query(
                    "UPDATE jobs SET status = 'queued', attempts = attempts + 1, locked_by = NULL, lease_until = NULL, \
                     last_error = $2, run_at = $1, updated_at = $1 WHERE status = 'running' AND lease_until < $1",
                )
                .bind(now)
                .bind(reason)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                for job in &failed {
                    Self::apply_job_failure(&mut tx, job, reason).await?;
                }
                if requeued > 0 {
                    Self::notify_jobs(&mut tx).await?;
                }
                tx.commit().await?;
                if requeued > 0 {
                    self.wake.notify_waiters();
                }
                Ok(failed)
            }

            async fn running_jobs(&self, pipeline_id: &str, except_job: &str) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT COUNT(*) FROM jobs WHERE pipeline_id = $1 AND status = 'running' AND id <> $2",
                )
                .bind(pipeline_id)
                .bind(except_job)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn row_counts(&self) -> Result<RowCounts, StoreError> {
                let (pipelines, stages, jobs, events, endpoints): (i64, i64, i64, i64, i64) = sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM pipelines), (SELECT COUNT(*) FROM stages), (SELECT COUNT(*) FROM jobs), \
                     (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM endpoints)",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok(RowCounts { pipelines, stages, jobs, events, endpoints })
            }
        }
    };
}

pub(crate) use impl_sql_store;

/// One audit event, as written inside a transition's transaction.
pub(crate) struct Event<'a> {
    pub pipeline_id: &'a str,
    pub stage_ordinal: Option<i32>,
    pub kind: &'a str,
    pub from_state: Option<&'a str>,
    pub to_state: Option<&'a str>,
    pub actor: &'a str,
    pub message: Option<&'a str>,
}
