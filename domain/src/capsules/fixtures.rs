//! Test fixtures shared by the capsule modules' tests.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

/// The seed's manifest example (seed 003, "Capsule Manifest Schema").
pub const SEED_MANIFEST: &str = "apiVersion: soma.dev/v1
kind: TaskCapsule
metadata:
  name: data-pipeline-builder
  version: 1.2.3
  author: community-user-123
  category: Data Engineering
  tags: [etl, pandas, sql]
  
spec:
  description: Build data pipelines with drag-and-drop UI
  
  permissions:
    - database.read
    - filesystem.write
    - network.egress
  
  dependencies:
    - pandas>=2.0.0
    - sqlalchemy>=2.0.0
    
  tokenEstimate:
    planning: 500
    execution: 2000
    total: 2500
  
  inputs:
    - name: source_connection
      type: string
      required: true
    - name: destination_path
      type: string
      required: true
      
  outputs:
    - name: pipeline_report
      type: json
";

/// A small manifest with only normal permissions, for `name` at `version`.
pub fn quiet_manifest(name: &str, version: &str) -> String {
    format!(
        "apiVersion: soma.dev/v1
kind: TaskCapsule
metadata:
  name: {name}
  version: {version}
  description: Summarise CSV files
spec:
  permissions: [filesystem.read]
  dependencies: ['csv-kit ^1.2']
  tokenEstimate: {{ total: 800 }}
  inputs:
    - {{ name: path, type: file, required: true }}
  outputs:
    - {{ name: summary, type: json }}
"
    )
}

/// A tar entry for [`tar_gz`]: raw name bytes, type flag, mode, link target, content.
pub struct Entry<'a> {
    pub name: &'a [u8],
    pub kind: tar::EntryType,
    pub mode: u32,
    pub link: &'a [u8],
    pub data: &'a [u8],
}

impl<'a> Entry<'a> {
    pub fn file(name: &'a str, data: &'a [u8]) -> Entry<'a> {
        Entry {
            name: name.as_bytes(),
            kind: tar::EntryType::Regular,
            mode: 0o644,
            link: b"",
            data,
        }
    }
}

/// Builds a `.tar.gz` with raw headers, so tests can write names a careful builder refuses
/// (`../x`, `/etc/passwd`).
pub fn tar_gz(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut tar = Vec::new();
    for e in entries {
        let mut header = tar::Header::new_old();
        {
            let old = header.as_old_mut();
            old.name[..e.name.len()].copy_from_slice(e.name);
            old.linkname[..e.link.len()].copy_from_slice(e.link);
        }
        header.set_entry_type(e.kind);
        header.set_mode(e.mode);
        header.set_size(e.data.len() as u64);
        header.set_mtime(0);
        header.set_cksum();
        tar.extend_from_slice(header.as_bytes());
        tar.extend_from_slice(e.data);
        let pad = (512 - e.data.len() % 512) % 512;
        tar.extend(std::iter::repeat_n(0u8, pad));
    }
    tar.extend(std::iter::repeat_n(0u8, 1024));
    gzip(&tar)
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}
