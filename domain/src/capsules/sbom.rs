//! CycloneDX 1.6 SBOM of a capsule version (todo).
