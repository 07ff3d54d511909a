//! A typed cursor over a kubeconfig's JSON value: each read checks the type
//! client-go's decoder would, and an error names the file and the place
//! (`users["kind"].user.exec`) where the value does not fit.

use std::path::{Path, PathBuf};

use super::Entry;
use crate::edges::config::{ConfigError, ConfigProblem};
use crate::leaves::base64;
use crate::leaves::yaml::Value;

/// A place in the document, for typed reads with errors that say where.
pub(super) struct Field<'a> {
    value: &'a Value,
    /// `users["kind"].user.exec`, say.
    at: String,
    file: &'a Path,
}

impl<'a> Field<'a> {
    /// The whole document of `file`.
    pub(super) fn root(value: &'a Value, file: &'a Path) -> Field<'a> {
        Field {
            value,
            at: String::new(),
            file,
        }
    }

    pub(super) fn wrong(&self, expected: &str) -> ConfigError {
        let at = match self.at.is_empty() {
            true => "the document",
            false => &self.at,
        };
        ConfigError::from(ConfigProblem::Field {
            file: self.file.to_path_buf(),
            at: at.to_string(),
            expected: expected.to_string(),
        })
    }

    fn child(&self, at: String, value: &'a Value) -> Field<'a> {
        Field {
            value,
            at,
            file: self.file,
        }
    }

    fn child_at(&self, key: &str) -> String {
        match self.at.is_empty() {
            true => key.to_string(),
            false => format!("{}.{key}", self.at),
        }
    }

    /// The value under `key`, or `None` when absent or null (JSON's null
    /// leaves a Go field as it was).
    pub(super) fn get(&self, key: &str) -> Option<Field<'a>> {
        self.value
            .get(key)
            .filter(|v| !matches!(v, Value::Null))
            .map(|v| self.child(self.child_at(key), v))
    }

    /// A struct: a mapping (JSON decodes nothing else into one).
    pub(super) fn object(&self) -> Result<(), ConfigError> {
        match self.value {
            Value::Map(_) => Ok(()),
            _ => Err(self.wrong("a mapping")),
        }
    }

    pub(super) fn object_or_null(&self) -> Result<(), ConfigError> {
        match self.value {
            Value::Null => Ok(()),
            _ => self.object(),
        }
    }

    /// An empty string counts as absent, as Go's zero value does.
    pub(super) fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let value = self.get(key).map(|node| node.string_here()).transpose()?;
        Ok(value.filter(|s| !s.is_empty()))
    }

    /// `kind` and `apiVersion` as kubectl first reads them, with Go's
    /// case-insensitive field names (`Kind:` counts).
    pub(super) fn string_any_case(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let Value::Map(entries) = self.value else {
            return Ok(None);
        };
        let found = entries
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .min_by_key(|(k, _)| k != key);
        match found {
            None | Some((_, Value::Null)) => Ok(None),
            Some((k, value)) => self.child(self.child_at(k), value).string_here().map(Some),
        }
    }

    pub(super) fn string_here(&self) -> Result<String, ConfigError> {
        match self.value {
            Value::Str(s) => Ok(s.clone()),
            Value::Number(_) | Value::Bool(_) => Err(self.wrong("a string (put it in quotes)")),
            _ => Err(self.wrong("a string")),
        }
    }

    pub(super) fn boolean(&self, key: &str) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(false),
            Some(node) => match node.value {
                Value::Bool(b) => Ok(*b),
                _ => Err(node.wrong("true or false")),
            },
        }
    }

    pub(super) fn path(&self, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.string(key)?.map(|p| self.resolve(&p)))
    }

    /// Relative to the directory of the file that holds it; no `~` expansion.
    pub(super) fn resolve(&self, path: &str) -> PathBuf {
        let dir = self.file.parent().unwrap_or(Path::new(""));
        dir.join(path)
    }

    /// A `[]byte` field: base64 as Go decodes it; empty counts as absent.
    pub(super) fn data(&self, key: &str) -> Result<Option<Vec<u8>>, ConfigError> {
        let Some(node) = self.get(key) else {
            return Ok(None);
        };
        let text = node.string_here()?;
        match base64::decode(&text) {
            Some(bytes) if bytes.is_empty() => Ok(None),
            Some(bytes) => Ok(Some(bytes)),
            None => Err(node.wrong(
                "base64 (as `base64 -w0 FILE` prints it; only line breaks may come between)",
            )),
        }
    }

    pub(super) fn items(&self) -> Result<Vec<Field<'a>>, ConfigError> {
        match self.value {
            Value::Seq(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, item)| self.child(format!("{}[{i}]", self.at), item))
                .collect()),
            _ => Err(self.wrong("a list")),
        }
    }

    pub(super) fn strings(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(node) => node.strings_here(),
        }
    }

    /// A `[]string`: a null item is Go's empty string.
    pub(super) fn strings_here(&self) -> Result<Vec<String>, ConfigError> {
        let items = match self.value {
            Value::Null => return Ok(Vec::new()),
            _ => self.items()?,
        };
        items
            .iter()
            .map(|item| match item.value {
                Value::Null => Ok(String::new()),
                _ => item.string_here(),
            })
            .collect()
    }

    pub(super) fn pairs(&self) -> Result<Vec<(String, Field<'a>)>, ConfigError> {
        let Value::Map(map) = self.value else {
            return Err(self.wrong("a mapping"));
        };
        Ok(map
            .iter()
            .map(|(key, value)| (key.clone(), self.child(self.child_at(key), value)))
            .collect())
    }

    /// `extensions:`: a list of `{name, extension}`, where an extension may be
    /// anything; names once each, as kubectl converts the list into a map.
    pub(super) fn extensions(&self, key: &str) -> Result<(), ConfigError> {
        let Some(node) = self.get(key) else {
            return Ok(());
        };
        let mut names: Vec<String> = Vec::new();
        for item in node.items()? {
            let taken = |name: &str| names.iter().any(|n| n == name);
            let (name, _) = item.entry(key, "extension", &taken)?;
            names.push(name);
        }
        Ok(())
    }

    /// `clusters:` and the like: a list of `{name: N, KIND: {...}}`, each name
    /// once (kubectl: "duplicate name in list"). A null item is an entry
    /// with an empty name, as Go decodes it.
    pub(super) fn entries<T>(
        &self,
        list: &str,
        kind: &str,
        read: fn(&Field) -> Result<T, ConfigError>,
    ) -> Result<Vec<Entry<T>>, ConfigError> {
        let Some(node) = self.get(list) else {
            return Ok(Vec::new());
        };
        let mut entries: Vec<Entry<T>> = Vec::new();
        for item in node.items()? {
            let taken = |name: &str| entries.iter().any(|e| e.name == name);
            let (name, body) = item.entry(list, kind, &taken)?;
            let value = read(&body)?;
            entries.push(Entry {
                name,
                file: self.file.to_path_buf(),
                value,
            });
        }
        Ok(entries)
    }

    /// One item of such a list: its name (not `taken` already) and the body
    /// under `kind`, checked to be an object. Not generic, so that the four
    /// kinds of list share it.
    fn entry(
        &self,
        list: &str,
        kind: &str,
        taken: &dyn Fn(&str) -> bool,
    ) -> Result<(String, Field<'a>), ConfigError> {
        self.object_or_null()?;
        let name = self.string("name")?.unwrap_or_default();
        if taken(&name) {
            return Err(self.wrong(&format!(
                "a {kind} name used once (duplicate name {name:?})"
            )));
        }
        let body = match self.get(kind) {
            Some(mut body) => {
                body.at = format!("{list}[{name:?}].{kind}");
                if kind != "extension" {
                    body.object()?;
                }
                body
            }
            None => self.child(String::new(), &Value::Null),
        };
        Ok((name, body))
    }
}
