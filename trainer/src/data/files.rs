//! Where a split's image files are read from: their folder, or the pack they were packed into.
//! Readers name a file by its locator (its path in the release) either way.

use super::image::{self, Picture};
use super::pack::Pack;
use anyhow::{Context, Result};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub enum Files {
    /// Locators are paths under this folder.
    Folder(PathBuf),
    /// Locators are looked up in the pack.
    Pack(Arc<Pack>),
}

impl From<&Path> for Files {
    fn from(root: &Path) -> Files {
        Files::Folder(root.to_path_buf())
    }
}

impl From<&PathBuf> for Files {
    fn from(root: &PathBuf) -> Files {
        Files::Folder(root.clone())
    }
}

impl Files {
    /// The bytes of the file at `locator`.
    pub fn read(&self, locator: &Path) -> Result<Cow<'_, [u8]>> {
        match self {
            Files::Folder(root) => Ok(Cow::Owned(super::read_file(&root.join(locator))?)),
            Files::Pack(pack) => {
                let name = locator.to_string_lossy();
                let row = pack
                    .find(&name)
                    .with_context(|| format!("{} holds no {name}", pack.path.display()))?;
                Ok(Cow::Borrowed(pack.bytes(row)?))
            }
        }
    }

    /// The picture at `locator`, decoded; errors say where it is.
    pub fn decode(&self, locator: &Path) -> Result<Picture> {
        let bytes = self.read(locator)?;
        image::decode(&bytes).with_context(|| format!("{}: cannot decode", self.describe(locator)))
    }

    /// The folder or the pack, for messages.
    pub fn location(&self) -> String {
        match self {
            Files::Folder(root) => root.display().to_string(),
            Files::Pack(pack) => pack.path.display().to_string(),
        }
    }

    /// Where `locator` is, for messages.
    pub fn describe(&self, locator: &Path) -> String {
        match self {
            Files::Folder(root) => root.join(locator).display().to_string(),
            Files::Pack(pack) => format!("{} in {}", locator.display(), pack.path.display()),
        }
    }
}
