//! The SQL both backends share. The two schemas have the same tables, columns and names, and
//! both drivers take `$N` placeholders, so one body of code serves both; the macro instantiates
//! it for each concrete sqlx database type. Each backend provides, as inherent items:
//! `BACKEND`, `MIGRATOR`, `CLAIM_JOBS_SQL`, `LOCK_PIPELINE_SQL`, `LOCK_LIVE_PIPELINE_SQL`,
//! `LOCK_JOB_SQL`, `begin_write()`, `notify_jobs(&mut tx)` and `clock(executor)`.
//!
//! Concurrency: every write transaction that touches a pipeline first locks its row
//! (`SELECT … FOR UPDATE` on Postgres; SQLite's `BEGIN IMMEDIATE` serialises writers anyway), so
//! transitions of one pipeline never interleave and locks are always taken pipeline row first.
//! An event takes its id only under that lock (`insert_event` takes it if the transaction has
//! not), so a pipeline's events commit in id order: a reader that has seen event `n` will never
//! later find an earlier one appear, and `id > n` is a cursor that misses nothing (the SSE
//! stream of `GET /v1/pipelines/{id}/events?follow=true` resumes from it).
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
                // The pipeline's lock before the id (see the module comment); a no-op when the
                // transaction holds it already.
                sqlx::query(Self::LOCK_PIPELINE_SQL).bind(event.pipeline_id).execute(&mut **tx).await?;
                sqlx::query(
                    "INSERT INTO events (pipeline_id, stage_ordinal, kind, from_state, to_state, actor, message, details, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(event.pipeline_id)
                .bind(event.stage_ordinal)
                .bind(event.kind)
                .bind(event.from_state)
                .bind(event.to_state)
                .bind(event.actor)
                .bind(event.message)
                .bind(event.details.map(sqlx::types::Json))
                .bind(crate::store::now())
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// The event of a state change: of the pipeline, or of its stage `ordinal`.
            async fn transition_event(
                tx: &mut Tx,
                pipeline_id: &str,
                ordinal: Option<i32>,
                (from, to): (&str, &str),
                actor: &str,
                message: &Option<String>,
                details: Option<&serde_json::Value>,
            ) -> Result<(), sqlx::Error> {
                use crate::domain::workflow::event_kind;
                let kind = if ordinal.is_some() { event_kind::STAGE_STATE_CHANGED } else { event_kind::PIPELINE_STATE_CHANGED };
                Self::insert_event(tx, crate::store::sql_store::Event {
                    pipeline_id,
                    stage_ordinal: ordinal,
                    kind,
                    from_state: Some(from),
                    to_state: Some(to),
                    actor,
                    message: message.as_deref(),
                    details,
                })
                .await
            }

            /// Reads the pipeline (already locked) and its stages as the workflow sees them.
            async fn snapshot(
                tx: &mut Tx,
                pipeline: &PipelineRecord,
            ) -> Result<crate::domain::workflow::Snapshot, StoreError> {
                let stages: Vec<StageRecord> =
                    sqlx::query_as("SELECT * FROM stages WHERE pipeline_id = $1 ORDER BY ordinal")
                        .bind(&pipeline.id)
                        .fetch_all(&mut **tx)
                        .await?;
                Ok(crate::store::sql_store::snapshot(pipeline, &stages))
            }

            /// Applies a workflow plan inside the caller's transaction. Transitions are fenced on
            /// the state the plan moves from: the row is locked, so a mismatch means the plan was
            /// made from stale rows, and the whole transaction is refused.
            async fn apply_plan(
                tx: &mut Tx,
                pipeline_id: &str,
                plan: &crate::domain::workflow::Plan,
                jobs: JobPolicy,
            ) -> Result<bool, StoreError> {
                use crate::domain::workflow::Change;
                let mut enqueued = false;
                for change in &plan.changes {
                    let now = crate::store::now();
                    match change {
                        Change::Pipeline { from, to, actor, message, last_error } => {
                            let changed = sqlx::query(
                                "UPDATE pipelines SET state = $2, last_error = $4, updated_at = $5 WHERE id = $1 AND state = $3",
                            )
                            .bind(pipeline_id)
                            .bind(to.as_str())
                            .bind(from.as_str())
                            .bind(last_error)
                            .bind(now)
                            .execute(&mut **tx)
                            .await?
                            .rows_affected();
                            if changed == 0 {
                                return Err(StoreError::Conflict(format!(
                                    "pipeline {pipeline_id} is no longer {from}"
                                )));
                            }
                            let states = (from.as_str(), to.as_str());
                            Self::transition_event(tx, pipeline_id, None, states, actor, message, None).await?;
                        }
                        Change::Stage { ordinal, version, from, to, actor, message, last_error } => {
                            let changed = sqlx::query(
                                "UPDATE stages SET state = $4, last_error = $6, updated_at = $7 \
                                 WHERE pipeline_id = $1 AND ordinal = $2 AND version = $3 AND state = $5",
                            )
                            .bind(pipeline_id)
                            .bind(ordinal)
                            .bind(version)
                            .bind(to.as_str())
                            .bind(from.as_str())
                            .bind(last_error)
                            .bind(now)
                            .execute(&mut **tx)
                            .await?
                            .rows_affected();
                            if changed == 0 {
                                return Err(StoreError::Conflict(format!(
                                    "stage {ordinal} of pipeline {pipeline_id} is no longer {from}"
                                )));
                            }
                            let states = (from.as_str(), to.as_str());
                            let details = serde_json::json!({ "version": version });
                            Self::transition_event(tx, pipeline_id, Some(*ordinal), states, actor, message, Some(&details))
                                .await?;
                        }
                        Change::Event { ordinal, kind, to_state, actor, message } => {
                            Self::insert_event(tx, crate::store::sql_store::Event {
                                pipeline_id,
                                stage_ordinal: *ordinal,
                                kind,
                                from_state: None,
                                to_state: *to_state,
                                actor,
                                message: message.as_deref(),
                                details: None,
                            })
                            .await?;
                        }
                        Change::StageOutputs { ordinal, version, outputs } => {
                            sqlx::query(
                                "UPDATE stages SET outputs = $4 WHERE pipeline_id = $1 AND ordinal = $2 AND version = $3",
                            )
                            .bind(pipeline_id)
                            .bind(ordinal)
                            .bind(version)
                            .bind(sqlx::types::Json(outputs))
                            .execute(&mut **tx)
                            .await?;
                        }
                        Change::Approved { ordinal, version, actor } => {
                            sqlx::query(
                                "UPDATE stages SET approved_by = $4, approved_at = $5 \
                                 WHERE pipeline_id = $1 AND ordinal = $2 AND version = $3",
                            )
                            .bind(pipeline_id)
                            .bind(ordinal)
                            .bind(version)
                            .bind(actor)
                            .bind(now)
                            .execute(&mut **tx)
                            .await?;
                        }
                        Change::CancelQueuedJobs => {
                            sqlx::query(
                                "UPDATE jobs SET status = 'cancelled', updated_at = $2 WHERE pipeline_id = $1 AND status = 'queued'",
                            )
                            .bind(pipeline_id)
                            .bind(now)
                            .execute(&mut **tx)
                            .await?;
                        }
                        Change::Enqueue { ordinal, payload } => {
                            Self::insert_job(tx, &NewJob {
                                kind: payload.kind().to_string(),
                                payload: payload.to_json(),
                                max_attempts: jobs.max_attempts,
                                run_at: now,
                                idempotency_key: None,
                                pipeline_id: Some(pipeline_id.to_string()),
                                stage_ordinal: *ordinal,
                            })
                            .await?;
                            enqueued = true;
                        }
                        Change::ReleaseEndpoints => {
                            sqlx::query("DELETE FROM endpoints WHERE pipeline_id = $1")
                                .bind(pipeline_id)
                                .execute(&mut **tx)
                                .await?;
                        }
                    }
                }
                Ok(enqueued)
            }

            /// Locks the pipeline's row for the rest of the transaction.
            async fn lock_pipeline(tx: &mut Tx, pipeline_id: &str) -> Result<Option<PipelineRecord>, StoreError> {
                Ok(sqlx::query_as(Self::LOCK_PIPELINE_SQL).bind(pipeline_id).fetch_optional(&mut **tx).await?)
            }

            /// `None` when the scheduled window is recorded already.
            async fn insert_execution(
                tx: &mut Tx,
                execution: &crate::store::NewExecution,
            ) -> Result<Option<crate::store::MonitorExecutionRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "INSERT INTO monitor_executions (id, monitor_id, origin, window_start, window_end, state, created_at) \
                     VALUES ($1, $2, $3, $4, $5, 'pending', $6) ON CONFLICT DO NOTHING RETURNING *",
                )
                .bind(&execution.id)
                .bind(&execution.monitor_id)
                .bind(&execution.origin)
                .bind(execution.window_start)
                .bind(execution.window_end)
                .bind(crate::store::now())
                .fetch_optional(&mut **tx)
                .await?)
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

            /// What a job that failed for good means for its pipeline, as the workflow decides.
            /// The job's own failure is recorded whatever the workflow says: a refusal is logged.
            async fn apply_job_failure(tx: &mut Tx, job: &JobRecord, error: &str) -> Result<(), StoreError> {
                let Some(pipeline_id) = job.pipeline_id.as_deref() else { return Ok(()) };
                let Some(pipeline) = Self::lock_pipeline(tx, pipeline_id).await? else { return Ok(()) };
                let snapshot = Self::snapshot(tx, &pipeline).await?;
                let fact = crate::domain::workflow::Fact::JobFailed(crate::store::sql_store::failed_job(job, error));
                match crate::domain::workflow::decide(&snapshot, &fact) {
                    Ok(plan) => {
                        crate::store::sql_store::log_skipped(pipeline_id, &fact, &plan);
                        Self::apply_plan(tx, pipeline_id, &plan, JobPolicy { max_attempts: job.max_attempts }).await?;
                    }
                    Err(e) => tracing::error!(pipeline.id = %pipeline_id, job.id = %job.id, error = %e, "the workflow refused a job failure"),
                }
                Ok(())
            }

            async fn provision_once(
                &self,
                new: &NewPipeline,
                planner: &StagePlanner<'_>,
                jobs: JobPolicy,
            ) -> Result<Provisioned, StoreError> {
                let now = crate::store::now();
                let mut tx = self.begin_write().await?;
                let existing: Option<PipelineRecord> = sqlx::query_as(Self::LOCK_LIVE_PIPELINE_SQL)
                    .bind(&new.pipeline_type)
                    .bind(&new.name)
                    .fetch_optional(&mut *tx)
                    .await?;
                let snapshot = match &existing {
                    Some(p) => Some(Self::snapshot(&mut tx, p).await?),
                    None => None,
                };
                let decided = crate::domain::workflow::provision(snapshot.as_ref(), &new.actor, new.origin_note.as_deref())
                    .map_err(|e| crate::store::sql_store::refused(&new.id, e))?;
                let planned = planner(decided.version).map_err(StoreError::Plan)?;
                let id = match &existing {
                    Some(old) => {
                        sqlx::query(
                            "UPDATE pipelines SET spec = $2, request = $3, target = $4, version = $5, \
                             updated_at = $6, origin = $7 WHERE id = $1",
                        )
                        .bind(&old.id)
                        .bind(sqlx::types::Json(&new.spec))
                        .bind(sqlx::types::Json(&new.request))
                        .bind(&new.target)
                        .bind(decided.version)
                        .bind(now)
                        .bind(new.origin.as_ref().map(sqlx::types::Json))
                        .execute(&mut *tx)
                        .await?;
                        sqlx::query("DELETE FROM stages WHERE pipeline_id = $1")
                            .bind(&old.id)
                            .execute(&mut *tx)
                            .await?;
                        old.id.clone()
                    }
                    None => {
                        sqlx::query(
                            "INSERT INTO pipelines (id, name, pipeline_type, target, spec, request, state, version, \
                             created_by, created_at, updated_at, origin) \
                             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $9, $10)",
                        )
                        .bind(&new.id)
                        .bind(&new.name)
                        .bind(&new.pipeline_type)
                        .bind(&new.target)
                        .bind(sqlx::types::Json(&new.spec))
                        .bind(sqlx::types::Json(&new.request))
                        .bind(decided.version)
                        .bind(&new.actor)
                        .bind(now)
                        .bind(new.origin.as_ref().map(sqlx::types::Json))
                        .execute(&mut *tx)
                        .await?;
                        new.id.clone()
                    }
                };

                for (ordinal, stage) in planned.stages.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO stages (pipeline_id, ordinal, environment, state, requires_approval, params, \
                         version, updated_at) VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7)",
                    )
                    .bind(&id)
                    .bind(ordinal as i32)
                    .bind(&stage.environment)
                    .bind(stage.requires_approval)
                    .bind(sqlx::types::Json(&stage.params))
                    .bind(decided.version)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }

                // Endpoints the new version no longer names stop existing; the ones it keeps go
                // on serving the previous model until the new stage deploys.
                let kept: Vec<(String, String)> =
                    planned.endpoints.iter().map(|e| (e.environment.clone(), e.name.clone())).collect();
                let owned: Vec<(String, String)> =
                    sqlx::query_as("SELECT environment, name FROM endpoints WHERE pipeline_id = $1")
                        .bind(&id)
                        .fetch_all(&mut *tx)
                        .await?;
                for (environment, name) in owned.iter().filter(|e| !kept.contains(e)) {
                    sqlx::query("DELETE FROM endpoints WHERE environment = $1 AND name = $2")
                        .bind(environment)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                }
                for endpoint in &planned.endpoints {
                    let reserved = sqlx::query(
                        "INSERT INTO endpoints (environment, name, pipeline_id, stage_ordinal, state, config, revision, \
                         created_at, updated_at) VALUES ($1, $2, $3, $4, 'creating', $5, 0, $6, $6) \
                         ON CONFLICT (environment, name) DO UPDATE SET stage_ordinal = excluded.stage_ordinal, \
                         updated_at = excluded.updated_at WHERE endpoints.pipeline_id = excluded.pipeline_id",
                    )
                    .bind(&endpoint.environment)
                    .bind(&endpoint.name)
                    .bind(&id)
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

                Self::apply_plan(&mut tx, &id, &decided.plan, jobs).await?;
                let record: PipelineRecord = sqlx::query_as("SELECT * FROM pipelines WHERE id = $1")
                    .bind(&id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                self.wake.notify_waiters();
                Ok(if decided.created { Provisioned::Created(record) } else { Provisioned::Updated(record) })
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

            async fn provision(
                &self,
                new: NewPipeline,
                planner: &StagePlanner<'_>,
                jobs: JobPolicy,
            ) -> Result<Provisioned, StoreError> {
                // Two first-time provisions of one name race on the unique index; the loser
                // retries and finds the winner's row, so it becomes an update.
                let mut attempt = 0;
                loop {
                    match self.provision_once(&new, planner, jobs).await {
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

            async fn apply(
                &self,
                pipeline_id: &str,
                fact: &crate::domain::workflow::Fact,
                jobs: JobPolicy,
            ) -> Result<Applied, StoreError> {
                let mut tx = self.begin_write().await?;
                let pipeline = Self::lock_pipeline(&mut tx, pipeline_id)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("pipeline {pipeline_id}")))?;
                let snapshot = Self::snapshot(&mut tx, &pipeline).await?;
                let plan = crate::domain::workflow::decide(&snapshot, fact)
                    .map_err(|e| crate::store::sql_store::refused(pipeline_id, e))?;
                crate::store::sql_store::log_skipped(pipeline_id, fact, &plan);
                let enqueued = Self::apply_plan(&mut tx, pipeline_id, &plan, jobs).await?;
                let pipeline: PipelineRecord = sqlx::query_as("SELECT * FROM pipelines WHERE id = $1")
                    .bind(pipeline_id)
                    .fetch_one(&mut *tx)
                    .await?;
                let stage = match crate::store::sql_store::named_stage(fact, &pipeline) {
                    Some((ordinal, version)) if plan.skipped.is_none() => sqlx::query_as(
                        "SELECT * FROM stages WHERE pipeline_id = $1 AND ordinal = $2 AND version = $3",
                    )
                    .bind(pipeline_id)
                    .bind(ordinal)
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?,
                    _ => None,
                };
                tx.commit().await?;
                if enqueued {
                    self.wake.notify_waiters();
                }
                Ok(Applied { pipeline, stage, skipped: plan.skipped })
            }

            async fn save_checkpoint(
                &self,
                key: &StageKey,
                checkpoint: &serde_json::Value,
            ) -> Result<bool, StoreError> {
                let changed = sqlx::query(
                    "UPDATE stages SET checkpoint = $4 WHERE pipeline_id = $1 AND ordinal = $2 AND version = $3",
                )
                .bind(&key.pipeline_id)
                .bind(key.ordinal)
                .bind(key.version)
                .bind(sqlx::types::Json(checkpoint))
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(changed > 0)
            }

            async fn stage_event(&self, key: &StageKey, kind: &str, actor: &str, message: &str) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                Self::insert_event(
                    &mut tx,
                    crate::store::sql_store::Event {
                        pipeline_id: &key.pipeline_id,
                        stage_ordinal: Some(key.ordinal),
                        kind,
                        from_state: None,
                        to_state: None,
                        actor,
                        message: Some(message),
                        details: None,
                    },
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn register_algorithm(
                &self,
                pipeline_id: &str,
                name: &str,
                sha256: &str,
                source: &str,
                details: &serde_json::Value,
            ) -> Result<AlgorithmRecord, StoreError> {
                let mut tx = self.begin_write().await?;
                let now = crate::store::now();
                let record: Option<AlgorithmRecord> = sqlx::query_as(
                    "INSERT INTO algorithms (name, pipeline_id, sha256, source, details, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) \
                     ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, source = excluded.source, \
                     details = excluded.details, updated_at = excluded.updated_at \
                     WHERE algorithms.pipeline_id = excluded.pipeline_id RETURNING *",
                )
                .bind(name)
                .bind(pipeline_id)
                .bind(sha256)
                .bind(source)
                .bind(sqlx::types::Json(details))
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(record) = record else {
                    return Err(StoreError::Conflict(format!("algorithm {name} belongs to another pipeline")));
                };
                sqlx::query("DELETE FROM algorithms WHERE pipeline_id = $1 AND name <> $2")
                    .bind(pipeline_id)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(record)
            }

            async fn algorithm(&self, name: &str) -> Result<Option<AlgorithmRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM algorithms WHERE name = $1").bind(name).fetch_optional(&self.pool).await?)
            }

            async fn list_algorithms(&self) -> Result<Vec<AlgorithmRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM algorithms ORDER BY name").fetch_all(&self.pool).await?)
            }

            async fn delete_algorithms(&self, pipeline_id: &str) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM algorithms WHERE pipeline_id = $1").bind(pipeline_id).execute(&self.pool).await?;
                Ok(())
            }

            async fn save_monitor(&self, monitor: &crate::store::NewMonitor) -> Result<crate::store::MonitorRecord, StoreError> {
                let mut tx = self.begin_write().await?;
                let now = crate::store::now();
                let record = sqlx::query_as(
                    "INSERT INTO monitors (id, pipeline_id, environment, name, monitor_type, endpoint_name, \
                     schedule_expression, config, state, next_run_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'scheduled', $9, $10, $10) \
                     ON CONFLICT (pipeline_id, environment) DO UPDATE SET name = excluded.name, \
                     monitor_type = excluded.monitor_type, endpoint_name = excluded.endpoint_name, \
                     schedule_expression = excluded.schedule_expression, config = excluded.config, \
                     state = 'scheduled', next_run_at = excluded.next_run_at, updated_at = excluded.updated_at \
                     RETURNING *",
                )
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(&monitor.pipeline_id)
                .bind(&monitor.environment)
                .bind(&monitor.name)
                .bind(&monitor.monitor_type)
                .bind(&monitor.endpoint_name)
                .bind(&monitor.schedule_expression)
                .bind(sqlx::types::Json(&monitor.config))
                .bind(monitor.next_run_at)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(record)
            }

            async fn delete_monitors(&self, pipeline_id: &str) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM monitors WHERE pipeline_id = $1").bind(pipeline_id).execute(&self.pool).await?;
                Ok(())
            }

            async fn monitor(&self, id: &str) -> Result<Option<crate::store::MonitorRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM monitors WHERE id = $1").bind(id).fetch_optional(&self.pool).await?)
            }

            async fn list_monitors(&self) -> Result<Vec<crate::store::MonitorRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM monitors ORDER BY environment, name").fetch_all(&self.pool).await?)
            }

            async fn due_monitors(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Vec<crate::store::MonitorRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM monitors WHERE state = 'scheduled' AND next_run_at <= $1 ORDER BY next_run_at",
                )
                .bind(now)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn claim_scheduled_execution(
                &self,
                expected: chrono::DateTime<chrono::Utc>,
                next: chrono::DateTime<chrono::Utc>,
                execution: &crate::store::NewExecution,
            ) -> Result<Option<crate::store::MonitorExecutionRecord>, StoreError> {
                let mut tx = self.begin_write().await?;
                let moved = sqlx::query(
                    "UPDATE monitors SET next_run_at = $1, updated_at = $2 \
                     WHERE id = $3 AND next_run_at = $4 AND state = 'scheduled'",
                )
                .bind(next)
                .bind(crate::store::now())
                .bind(&execution.monitor_id)
                .bind(expected)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if moved == 0 {
                    return Ok(None);
                }
                let Some(record) = Self::insert_execution(&mut tx, execution).await? else {
                    return Ok(None);
                };
                Self::insert_job(&mut tx, &execution.job).await?;
                tx.commit().await?;
                self.wake.notify_waiters();
                Ok(Some(record))
            }

            async fn create_execution(
                &self,
                execution: &crate::store::NewExecution,
            ) -> Result<crate::store::MonitorExecutionRecord, StoreError> {
                let mut tx = self.begin_write().await?;
                let record = Self::insert_execution(&mut tx, execution)
                    .await?
                    .ok_or_else(|| StoreError::Conflict(format!("execution {} exists", execution.id)))?;
                Self::insert_job(&mut tx, &execution.job).await?;
                tx.commit().await?;
                self.wake.notify_waiters();
                Ok(record)
            }

            async fn execution(&self, id: &str) -> Result<Option<crate::store::MonitorExecutionRecord>, StoreError> {
                Ok(sqlx::query_as("SELECT * FROM monitor_executions WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn list_executions(
                &self,
                monitor_id: &str,
                limit: i64,
            ) -> Result<Vec<crate::store::MonitorExecutionRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT * FROM monitor_executions WHERE monitor_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
                )
                .bind(monitor_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn start_execution(&self, id: &str) -> Result<bool, StoreError> {
                let changed = sqlx::query(
                    "UPDATE monitor_executions SET state = 'running', started_at = $2 WHERE id = $1 AND state IN ('pending', 'running')",
                )
                .bind(id)
                .bind(crate::store::now())
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(changed > 0)
            }

            async fn finish_execution(
                &self,
                id: &str,
                state: &str,
                result: Option<&serde_json::Value>,
                error: Option<&str>,
                event: &MonitorEvent<'_>,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                let pipeline_id: Option<(String,)> = sqlx::query_as(
                    "SELECT m.pipeline_id FROM monitor_executions e JOIN monitors m ON m.id = e.monitor_id WHERE e.id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                // Pipeline row first, as everywhere: the event below needs its lock.
                if let Some((pipeline_id,)) = &pipeline_id {
                    Self::lock_pipeline(&mut tx, pipeline_id).await?;
                }
                sqlx::query(
                    "UPDATE monitor_executions SET state = $2, result = $3, error = $4, finished_at = $5 WHERE id = $1",
                )
                .bind(id)
                .bind(state)
                .bind(result.map(sqlx::types::Json))
                .bind(error)
                .bind(crate::store::now())
                .execute(&mut *tx)
                .await?;
                if let Some((pipeline_id,)) = pipeline_id {
                    Self::insert_event(
                        &mut tx,
                        crate::store::sql_store::Event {
                            pipeline_id: &pipeline_id,
                            stage_ordinal: None,
                            kind: event.kind,
                            from_state: None,
                            to_state: None,
                            actor: "monitor",
                            message: Some(event.message),
                            details: event.details,
                        },
                    )
                    .await?;
                }
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
                    details: None,
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

            async fn job_queue_stats(&self) -> Result<JobQueueStats, StoreError> {
                let (queued, running): (i64, i64) = sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM jobs WHERE status = 'queued'), \
                     (SELECT COUNT(*) FROM jobs WHERE status = 'running')",
                )
                .fetch_one(&self.pool)
                .await?;
                let oldest: Option<(chrono::DateTime<chrono::Utc>,)> = sqlx::query_as(
                    "SELECT run_at FROM jobs WHERE status = 'queued' AND run_at <= $1 ORDER BY run_at LIMIT 1",
                )
                .bind(crate::store::now())
                .fetch_optional(&self.pool)
                .await?;
                Ok(JobQueueStats { queued, running, oldest_queued_at: oldest.map(|(at,)| at) })
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

use crate::domain::workflow::{Fact, FailedJob, PipelineSnapshot, Plan, Snapshot, StageSnapshot, WorkflowError};
use crate::store::{JobRecord, PipelineRecord, StageRecord, StoreError};

pub(crate) fn snapshot(pipeline: &PipelineRecord, stages: &[StageRecord]) -> Snapshot {
    Snapshot {
        pipeline: PipelineSnapshot { id: pipeline.id.clone(), state: pipeline.state, version: pipeline.version },
        stages: stages
            .iter()
            .map(|s| StageSnapshot {
                ordinal: s.ordinal,
                environment: s.environment.clone(),
                state: s.state,
                requires_approval: s.requires_approval,
                version: s.version,
            })
            .collect(),
    }
}

pub(crate) fn failed_job(job: &JobRecord, error: &str) -> FailedJob {
    let version = crate::domain::jobs::JobPayload::parse(&job.kind, &job.payload.0)
        .ok()
        .and_then(|p| p.version())
        .or_else(|| job.payload.0.get("version").and_then(|v| v.as_i64()));
    FailedJob {
        id: job.id.clone(),
        kind: job.kind.clone(),
        ordinal: job.stage_ordinal,
        version,
        error: error.to_string(),
    }
}

/// The stage a fact is about, at the version it names (a decision is about the current one).
pub(crate) fn named_stage(fact: &Fact, pipeline: &PipelineRecord) -> Option<(i32, i64)> {
    match fact {
        Fact::StageStarted { ordinal, version } | Fact::StageDeployed { ordinal, version, .. } => {
            Some((*ordinal, *version))
        }
        Fact::Decided { ordinal, .. } => Some((*ordinal, pipeline.version)),
        _ => None,
    }
}

/// A refusal by the workflow. One the state machines make is a surprise worth an error in the
/// log; a request that does not fit the pipeline's state is the caller's to report.
pub(crate) fn refused(pipeline_id: &str, error: WorkflowError) -> StoreError {
    match error {
        WorkflowError::Conflict(why) => StoreError::Conflict(why),
        WorkflowError::NotFound(what) => StoreError::NotFound(what),
        illegal => {
            tracing::error!(pipeline.id = %pipeline_id, error = %illegal, "the workflow refused a transition");
            StoreError::Workflow(illegal)
        }
    }
}

pub(crate) fn log_skipped(pipeline_id: &str, fact: &Fact, plan: &Plan) {
    if let Some(reason) = &plan.skipped {
        tracing::info!(pipeline.id = %pipeline_id, fact = fact.name(), %reason, "nothing to do");
    }
}

/// One audit event, as written inside a transition's transaction.
pub(crate) struct Event<'a> {
    pub pipeline_id: &'a str,
    pub stage_ordinal: Option<i32>,
    pub kind: &'a str,
    pub from_state: Option<&'a str>,
    pub to_state: Option<&'a str>,
    pub actor: &'a str,
    pub message: Option<&'a str>,
    /// Structured facts for readers such as the notification rules (a stage's version, a
    /// monitor's violations).
    pub details: Option<&'a serde_json::Value>,
}
