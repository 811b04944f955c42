-- The local target's model registry (issue 16): model package groups and their versions, as
-- SageMaker's model registry keeps them, and every approval decision on a version.
CREATE TABLE model_package_groups (
    name        TEXT PRIMARY KEY,
    description TEXT,
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE model_packages (
    group_name        TEXT NOT NULL REFERENCES model_package_groups (name),
    version           BIGINT NOT NULL,
    framework         TEXT NOT NULL,
    framework_version TEXT,
    artifact          TEXT NOT NULL,
    description       TEXT,
    approval_status   TEXT NOT NULL,
    created_by        TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (group_name, version)
);

CREATE TABLE model_package_decisions (
    id         TEXT PRIMARY KEY,
    group_name TEXT NOT NULL,
    version    BIGINT NOT NULL,
    status     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    comment    TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (group_name, version) REFERENCES model_packages (group_name, version)
);
CREATE INDEX model_package_decisions_version ON model_package_decisions (group_name, version, id);
