//! `byom_image_builder` on the local target: the zip is checked, kept as a content-addressed
//! snapshot (`serving::endpoints::algorithm_snapshot_path`), unpacked with its requirements installed into a
//! virtual environment on this replica (`serving::algorithm`), and registered under
//! `ecr_repo_name:image_tag`, the name a `custom_image_uri` then gives. No container engine is
//! used, and the events say so.

use super::LocalTarget;
use crate::artifacts::StorageError;
use crate::domain::spec::ImageBuilderSpec;
use crate::serving::algorithm::{self, MaterializeError};
use crate::serving::endpoints::algorithm_snapshot_path;
use crate::store::StoreError;
use crate::targets::{StageContext, StepOutcome, TargetError};
use object_store::ObjectStoreExt;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Largest zip accepted (its unpacked size is bounded separately).
const MAX_ZIP_BYTES: u64 = 512 * 1024 * 1024;

impl LocalTarget {
    pub(super) async fn deploy_image_builder(
        &self,
        stage: &StageContext,
        spec: &ImageBuilderSpec,
    ) -> Result<StepOutcome, TargetError> {
        let key = spec.custom_algorithm_docker.as_str();
        let zip = self.artifacts.read_asset(key, MAX_ZIP_BYTES).await.map_err(|e| match e {
            StorageError::NotFound { .. } => TargetError::not_found(format!(
                "custom_algorithm_docker {key:?} is not in the assets bucket: upload it first (PUT /v1/assets/{key})"
            )),
            StorageError::Backend(_) => TargetError::transient(format!("reading {key:?}: {e}")),
            other => TargetError::permanent(format!("reading {key:?}: {other}")),
        })?;
        let layout = algorithm::inspect(&zip).map_err(|e| TargetError::permanent(e.to_string()))?;
        let sha256 = hex::encode(Sha256::digest(&zip));
        let store = self.artifacts.object_store();
        let snapshot = algorithm_snapshot_path(&sha256);
        if store.head(&snapshot).await.is_err() {
            store
                .put(&snapshot, zip.clone().into())
                .await
                .map_err(|e| TargetError::transient(format!("storing the algorithm's snapshot: {e}")))?;
        }
        let built = algorithm::materialize(&zip, &sha256, &self.algorithms_dir, &self.python, self.install_timeout)
            .await
            .map_err(|e| match e {
                MaterializeError::Unpack(_) => TargetError::transient(e.to_string()),
                _ => TargetError::permanent(e.to_string()),
            })?;

        let name = format!("{}:{}", spec.ecr_repo_name.as_str(), spec.image_tag.as_str());
        let details = json!({
            "mode": "process",
            "program_dir": layout.program_dir,
            "has_train": layout.has_train,
            "requirements": layout.requirements,
            "files": layout.files,
            "unpacked_bytes": layout.unpacked_bytes,
        });
        self.store.register_algorithm(&stage.key.pipeline_id, &name, &sha256, key, &details).await.map_err(
            |e| match e {
                StoreError::Conflict(why) => TargetError::conflict(why),
                other => TargetError::transient(other.to_string()),
            },
        )?;
        let message = format!(
            "built {name} in process mode (no container engine is used: the algorithm runs as a child process \
             from its unpacked code): {} files, entry point `{}serve`, requirements: {}; use custom_image_uri \
             \"{name}\"",
            layout.files,
            if layout.program_dir.is_empty() { String::new() } else { format!("{}/", layout.program_dir) },
            layout.requirements.as_deref().map_or_else(
                || "none".to_string(),
                |r| format!("{r} ({})", built.install_log.lines().last().unwrap_or(""))
            ),
        );
        if let Err(e) = self.store.progress(&stage.key, "image.built", &message).await {
            tracing::warn!(error = %e, "recording the image build failed");
        }
        Ok(StepOutcome::Done(json!({
            "algorithm": name,
            "custom_algorithm_image_uri": name,
            "sha256": sha256,
            "mode": "process",
            "program_dir": layout.program_dir,
            "has_train": layout.has_train,
        })))
    }
}
