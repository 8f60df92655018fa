//! A storage backend over a directory: the example to copy when you write your own backend
//! (Postgres, etcd, S3...).
//!
//! Layout under the root folder:
//! - `records/<id>.pem`: one file per record, created with `create_new`, so of concurrent
//!   inserts exactly one wins (the file system's atomic create-if-absent);
//! - `index/<org as hex>`: the org's IDs, one per line, in insertion order.
//!
//! Index updates go through one lock per process, so this backend is for one process; it
//! cannot notify (`watch` is `None`), and the manager relies on its cache TTL. Org IDs are
//! hex-encoded in file names, so no org ID can name a path outside the folder.

use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use cert_store::{
    CertStorage, Changes, Cursor, Inserted, Page, PageRequest, Scope, StorageError,
    StorageErrorKind,
};
use tls_core::{CertId, OrgId};
use tokio::sync::Mutex;

/// Certificate records as files in a folder.
#[derive(Debug)]
pub struct FileStorage {
    root: PathBuf,
    /// Serialises index rewrites (records themselves are created atomically).
    index_lock: Mutex<()>,
}

fn io_error(what: &str, e: &std::io::Error) -> StorageError {
    let kind = match e.kind() {
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => StorageErrorKind::Rejected,
        ErrorKind::TimedOut | ErrorKind::Interrupted | ErrorKind::WouldBlock => {
            StorageErrorKind::Timeout
        }
        _ => StorageErrorKind::Other,
    };
    StorageError::new(kind, format!("{what}: {e}"))
}

impl FileStorage {
    /// Opens (creating it when missing) the folder `root`.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        for sub in ["records", "index"] {
            tokio::fs::create_dir_all(root.join(sub))
                .await
                .map_err(|e| io_error(&format!("creating {}", root.display()), &e))?;
        }
        Ok(Self {
            root,
            index_lock: Mutex::new(()),
        })
    }

    fn record_path(&self, id: &CertId) -> PathBuf {
        // IDs are an org (printable ASCII without '/') plus hex: hex-encode the org part too.
        self.root.join("records").join(format!(
            "{}{}.pem",
            hex(id.org().as_str()),
            id.fingerprint()
        ))
    }

    fn index_path(&self, org: &OrgId) -> PathBuf {
        self.root
            .join("index")
            .join(format!("org-{}", hex(org.as_str())))
    }

    async fn read_index(&self, org: &OrgId) -> Result<Vec<CertId>, StorageError> {
        read_index_file(&self.index_path(org)).await
    }

    async fn orgs(&self) -> Result<Vec<OrgId>, StorageError> {
        let mut entries = tokio::fs::read_dir(self.root.join("index"))
            .await
            .map_err(|e| io_error("listing the index folder", &e))?;
        let mut orgs = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io_error("listing the index folder", &e))?
        {
            let name = entry.file_name();
            let Some(hex_org) = name.to_str().and_then(|n| n.strip_prefix("org-")) else {
                continue;
            };
            if let Some(org) = unhex(hex_org).and_then(|o| OrgId::new(o).ok()) {
                orgs.push(org);
            }
        }
        orgs.sort();
        Ok(orgs)
    }
}

async fn read_index_file(path: &Path) -> Result<Vec<CertId>, StorageError> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(text.lines().filter_map(|line| line.parse().ok()).collect()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_error("reading an index", &e)),
    }
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect();
    String::from_utf8(bytes?).ok()
}

/// Writes `ids` to `path` through a temporary file and a rename, so readers never see half.
async fn write_index(path: &Path, ids: &[CertId]) -> Result<(), StorageError> {
    let text: String = ids.iter().map(|id| format!("{id}\n")).collect();
    let temporary = path.with_extension("tmp");
    tokio::fs::write(&temporary, text)
        .await
        .map_err(|e| io_error("writing an index", &e))?;
    tokio::fs::rename(&temporary, path)
        .await
        .map_err(|e| io_error("replacing an index", &e))
}

fn page_of(ids: Vec<CertId>, page: &PageRequest) -> Result<Page<CertId>, StorageError> {
    let offset = match &page.cursor {
        None => 0,
        Some(cursor) => cursor.as_str().parse::<usize>().map_err(|_| {
            StorageError::new(
                StorageErrorKind::Rejected,
                format!("invalid listing cursor {:?}", cursor.as_str()),
            )
        })?,
    };
    let limit = page.limit.max(1);
    let items: Vec<CertId> = ids.iter().skip(offset).take(limit).cloned().collect();
    let next =
        (offset + items.len() < ids.len()).then(|| Cursor::new((offset + items.len()).to_string()));
    Ok(Page { items, next })
}

#[async_trait]
impl CertStorage for FileStorage {
    async fn insert(&self, id: &CertId, record: &str) -> Result<Inserted, StorageError> {
        let path = self.record_path(id);
        let _guard = self.index_lock.lock().await;
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path);
        let mut file = match created {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(Inserted::AlreadyExists),
            Err(e) => return Err(io_error("creating a record", &e)),
        };
        if let Err(e) = file
            .write_all(record.as_bytes())
            .and_then(|()| file.sync_all())
        {
            let _ = std::fs::remove_file(&path);
            return Err(io_error("writing a record", &e));
        }
        let mut ids = self.read_index(id.org()).await?;
        ids.push(id.clone());
        if let Err(e) = write_index(&self.index_path(id.org()), &ids).await {
            // Both or neither: undo the record.
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(Inserted::Added)
    }

    async fn get(&self, id: &CertId) -> Result<Option<String>, StorageError> {
        match tokio::fs::read_to_string(self.record_path(id)).await {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("reading a record", &e)),
        }
    }

    async fn replace(
        &self,
        id: &CertId,
        expected: &str,
        record: &str,
    ) -> Result<bool, StorageError> {
        let _guard = self.index_lock.lock().await;
        if self.get(id).await?.as_deref() != Some(expected) {
            return Ok(false);
        }
        let path = self.record_path(id);
        let temporary = path.with_extension("tmp");
        tokio::fs::write(&temporary, record)
            .await
            .map_err(|e| io_error("writing a record", &e))?;
        tokio::fs::rename(&temporary, &path)
            .await
            .map_err(|e| io_error("replacing a record", &e))?;
        Ok(true)
    }

    async fn delete(&self, id: &CertId) -> Result<bool, StorageError> {
        let _guard = self.index_lock.lock().await;
        let existed = match tokio::fs::remove_file(self.record_path(id)).await {
            Ok(()) => true,
            Err(e) if e.kind() == ErrorKind::NotFound => false,
            Err(e) => return Err(io_error("removing a record", &e)),
        };
        let mut ids = self.read_index(id.org()).await?;
        let before = ids.len();
        ids.retain(|listed| listed != id);
        if ids.len() != before {
            write_index(&self.index_path(id.org()), &ids).await?;
        }
        Ok(existed)
    }

    async fn list(
        &self,
        scope: Scope<'_>,
        page: &PageRequest,
    ) -> Result<Page<CertId>, StorageError> {
        let ids = match scope {
            Scope::Org(org) => self.read_index(org).await?,
            Scope::All => {
                let mut all = Vec::new();
                for org in self.orgs().await? {
                    all.extend(self.read_index(&org).await?);
                }
                all
            }
        };
        page_of(ids, page)
    }

    fn watch(&self) -> Option<Changes> {
        None
    }

    async fn ping(&self) -> Result<(), StorageError> {
        tokio::fs::metadata(&self.root)
            .await
            .map(drop)
            .map_err(|e| io_error("the storage folder", &e))
    }
}
