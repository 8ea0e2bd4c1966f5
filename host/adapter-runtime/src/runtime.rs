//! [`AdapterRuntime`]: the registry of adapter instances, their hot reload, and
//! chain lookup. Each instance name owns a slot whose current version is swapped
//! atomically; a call holds the version it started on, so in-flight calls finish
//! on the old version while new calls see the new one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::ArcSwapOption;

use crate::chain::{Chain, FilterChain, MeterGroup};
use crate::config::{AdapterSpec, AdaptersSource};
use crate::engine::{AdapterEngine, EngineOptions};
use crate::error::{ChainError, LoadError};
use crate::instance::{AdapterVersion, World, fingerprint, read_component};
use crate::kv::{KvStore, MemoryKv};
use crate::stats::{AdapterStats, AdapterStatsSnapshot};

/// How to build the runtime.
#[derive(Clone, Default)]
pub struct RuntimeOptions {
    pub engine: EngineOptions,
    /// The adapters' key-value backend; in-memory when `None`.
    pub kv: Option<Arc<dyn KvStore>>,
}

pub(crate) struct Slot {
    pub name: String,
    pub world: World,
    pub current: ArcSwapOption<AdapterVersion>,
    pub stats: Arc<AdapterStats>,
}

pub(crate) struct Inner {
    pub engine: Arc<AdapterEngine>,
    kv: Arc<dyn KvStore>,
    slots: RwLock<HashMap<String, Arc<Slot>>>,
    source: Mutex<Option<AdaptersSource>>,
    /// Serialises loads and reloads (SIGHUP and the watcher may race).
    reload_lock: tokio::sync::Mutex<()>,
}

/// The adapter host. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct AdapterRuntime {
    pub(crate) inner: Arc<Inner>,
}

/// One adapter's fate in a reload.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// A new version now serves.
    Swapped { name: String, version: String },
    /// The file and declaration did not change; nothing was rebuilt.
    Unchanged { name: String },
    /// A new instance declared for the first time.
    Added { name: String, version: String },
    /// No longer declared: calls through existing chains fail with `Removed`.
    Removed { name: String },
    /// The new version was refused; the old one keeps serving.
    Kept { name: String, error: LoadError },
}

/// Everything a reload did. `error` is set when the declarations themselves
/// could not be read; then nothing changed.
#[derive(Debug, Default)]
pub struct ReloadReport {
    pub outcomes: Vec<ReloadOutcome>,
    pub error: Option<LoadError>,
}

impl ReloadReport {
    /// True when every declared adapter now runs its latest version.
    pub fn is_clean(&self) -> bool {
        self.error.is_none()
            && !self
                .outcomes
                .iter()
                .any(|o| matches!(o, ReloadOutcome::Kept { .. }))
    }
}

impl AdapterRuntime {
    /// Create the engine (and its epoch ticker). No adapters yet: see [`Self::load`].
    pub fn new(options: RuntimeOptions) -> Result<Self, LoadError> {
        let engine = Arc::new(AdapterEngine::new(options.engine)?);
        let kv = options.kv.unwrap_or_else(|| Arc::new(MemoryKv::new()));
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                kv,
                slots: RwLock::new(HashMap::new()),
                source: Mutex::new(None),
                reload_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Startup load: every declared adapter must compile, match a world and
    /// `init`; the first failure is returned and nothing is installed.
    pub async fn load(&self, source: AdaptersSource) -> Result<(), LoadError> {
        let _guard = self.inner.reload_lock.lock().await;
        let specs = source.load()?;
        let mut built = Vec::with_capacity(specs.len());
        for spec in specs {
            let bytes = read_component(&spec)?;
            let stats = self.stats_for(&spec.name);
            let version = AdapterVersion::load(
                &self.inner.engine,
                spec,
                bytes,
                self.inner.kv.clone(),
                stats.clone(),
            )
            .await?;
            built.push((version, stats));
        }
        let mut slots = self.write_slots();
        slots.clear();
        for (version, stats) in built {
            tracing::info!(adapter = version.name(), version = version.version(), world = ?version.world, "adapter loaded");
            slots.insert(
                version.name().to_owned(),
                Arc::new(Slot {
                    name: version.name().to_owned(),
                    world: version.world,
                    current: ArcSwapOption::from(Some(version)),
                    stats,
                }),
            );
        }
        drop(slots);
        if let Ok(mut current) = self.inner.source.lock() {
            *current = Some(source);
        }
        Ok(())
    }

    /// Re-read the declarations and rebuild what changed (call on SIGHUP). Each
    /// adapter is swapped atomically; a version that fails to compile or `init`
    /// leaves the old one serving, and the report (also logged) says why.
    pub async fn reload(&self) -> ReloadReport {
        let _guard = self.inner.reload_lock.lock().await;
        let source = self.inner.source.lock().ok().and_then(|s| s.clone());
        let Some(source) = source else {
            return ReloadReport {
                outcomes: Vec::new(),
                error: Some(LoadError::Engine("reload before the first load".into())),
            };
        };
        let specs = match source.load() {
            Ok(specs) => specs,
            Err(e) => {
                tracing::error!("adapters reload refused, keeping the running set: {e}");
                return ReloadReport {
                    outcomes: Vec::new(),
                    error: Some(e.into()),
                };
            }
        };
        let mut report = ReloadReport::default();
        let declared: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        for spec in specs {
            let outcome = self.reload_one(spec).await;
            match &outcome {
                ReloadOutcome::Kept { name, error } => {
                    tracing::error!(adapter = %name, "new adapter version refused, old version keeps serving: {error}")
                }
                other => tracing::info!("adapter reload: {other:?}"),
            }
            report.outcomes.push(outcome);
        }
        let slots = self.read_slots();
        for slot in slots.values() {
            if !declared.contains(&slot.name) && slot.current.load().is_some() {
                slot.current.store(None);
                tracing::warn!(adapter = %slot.name, "adapter removed from the configuration");
                report.outcomes.push(ReloadOutcome::Removed {
                    name: slot.name.clone(),
                });
            }
        }
        report
    }

    async fn reload_one(&self, spec: AdapterSpec) -> ReloadOutcome {
        let name = spec.name.clone();
        let kept = |error| ReloadOutcome::Kept {
            name: name.clone(),
            error,
        };
        let existing = self.read_slots().get(&name).cloned();
        let bytes = match read_component(&spec) {
            Ok(bytes) => bytes,
            Err(e) => return kept(e),
        };
        if let Some(slot) = &existing
            && let Some(current) = slot.current.load_full()
            && current.spec == spec
            && current.fingerprint == fingerprint(&bytes)
        {
            return ReloadOutcome::Unchanged { name };
        }
        let stats = self.stats_for(&name);
        let version = match AdapterVersion::load(
            &self.inner.engine,
            spec,
            bytes,
            self.inner.kv.clone(),
            stats.clone(),
        )
        .await
        {
            Ok(v) => v,
            Err(e) => return kept(e),
        };
        let label = version.version().to_owned();
        match existing {
            Some(slot) if slot.world != version.world => kept(LoadError::UnknownWorld {
                adapter: name.clone(),
                reason: format!(
                    "was a {:?}, the new component is a {:?}; a running adapter cannot change world",
                    slot.world, version.world
                ),
            }),
            Some(slot) => {
                slot.current.store(Some(version));
                stats.reloaded();
                ReloadOutcome::Swapped {
                    name,
                    version: label,
                }
            }
            None => {
                self.write_slots().insert(
                    name.clone(),
                    Arc::new(Slot {
                        name: name.clone(),
                        world: version.world,
                        current: ArcSwapOption::from(Some(version)),
                        stats,
                    }),
                );
                ReloadOutcome::Added {
                    name,
                    version: label,
                }
            }
        }
    }

    /// Resolve a domain's ordered chain. Filters keep their order; meters named
    /// in the chain receive that domain's usage records.
    pub fn chain<S: AsRef<str>>(&self, names: &[S]) -> Result<Chain, ChainError> {
        let slots = self.read_slots();
        let mut filters = Vec::new();
        let mut meters = Vec::new();
        let mut seen = Vec::new();
        for name in names {
            let name = name.as_ref();
            if seen.contains(&name) {
                return Err(ChainError::Repeated(name.to_owned()));
            }
            seen.push(name);
            let slot = slots
                .get(name)
                .filter(|s| s.current.load().is_some())
                .ok_or_else(|| ChainError::Unknown(name.to_owned()))?;
            match slot.world {
                World::Filter => filters.push(slot.clone()),
                World::Meter => meters.push(slot.clone()),
            }
        }
        Ok(Chain {
            filters: FilterChain::new(self.inner.engine.clone(), filters),
            meters: MeterGroup::new(meters),
        })
    }

    /// Names of the loaded adapters with their world and version.
    pub fn adapters(&self) -> Vec<(String, World, String)> {
        let mut list: Vec<_> = self
            .read_slots()
            .values()
            .filter_map(|s| {
                s.current
                    .load_full()
                    .map(|v| (s.name.clone(), s.world, v.version().to_owned()))
            })
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    /// Counters per adapter name.
    pub fn stats(&self) -> Vec<AdapterStatsSnapshot> {
        let mut list: Vec<_> = self
            .read_slots()
            .values()
            .map(|s| s.stats.snapshot(&s.name))
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// The source last loaded (for the watcher).
    pub fn source(&self) -> Option<AdaptersSource> {
        self.inner.source.lock().ok().and_then(|s| s.clone())
    }

    /// Component paths currently declared (for the watcher).
    pub(crate) fn component_paths(&self) -> Vec<std::path::PathBuf> {
        self.read_slots()
            .values()
            .filter_map(|s| s.current.load_full().map(|v| v.spec.path.clone()))
            .collect()
    }

    pub(crate) fn meter_slots(&self) -> Vec<Arc<Slot>> {
        self.read_slots()
            .values()
            .filter(|s| s.world == World::Meter)
            .cloned()
            .collect()
    }

    fn stats_for(&self, name: &str) -> Arc<AdapterStats> {
        self.read_slots()
            .get(name)
            .map(|s| s.stats.clone())
            .unwrap_or_default()
    }

    fn read_slots(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Slot>>> {
        self.inner
            .slots
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_slots(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Slot>>> {
        self.inner
            .slots
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
