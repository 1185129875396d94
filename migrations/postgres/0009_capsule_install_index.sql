-- The capsule notices process manager's own index (commands/src/capsules/notices.rs): which
-- version each live installation holds, kept in log order by the process manager itself, so a
-- newly published breaking version reaches every installation recorded before it (a read
-- model of another runner could lag behind). Rebuilt by replaying the process manager.
CREATE TABLE capsule_install_index (
    installation_id TEXT PRIMARY KEY,
    capsule TEXT NOT NULL,
    tenant TEXT NOT NULL,
    version TEXT NOT NULL
);

CREATE INDEX capsule_install_index_capsule ON capsule_install_index (capsule);
