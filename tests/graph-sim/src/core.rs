//! The shared state every handler sees: world, settings, throttling, faults, logs, clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use rand::RngCore;

use crate::faults::Chaos;
use crate::hold::Gate;
use crate::identity::grants::Grants;
use crate::identity::tokens::TokenService;
use crate::record::Recorder;
use crate::seed::Fixture;
use crate::settings::Settings;
use crate::state::{SeedError, World};
use crate::throttle::Throttle;

/// Where the two services listen.
#[derive(Clone, Debug)]
pub struct BaseUrls {
    pub graph: String,
    pub login: String,
}

/// The simulator's state, shared by both listeners.
pub struct Sim {
    /// Distinguishes request ids of simulators running in one process.
    pub instance: u64,
    /// The seed, restored by `reset`.
    pub fixture: Fixture,
    /// The settings at start, restored by `reset`.
    pub initial_settings: Settings,
    /// The RNG seed at start, restored by `reset`.
    pub rng_seed: Option<u64>,
    pub world: RwLock<World>,
    pub settings: RwLock<Settings>,
    pub throttle: Arc<Throttle>,
    pub recorder: Recorder,
    pub chaos: Chaos,
    /// Where Graph requests wait while a test holds them.
    pub gate: Arc<Gate>,
    pub tokens: TokenService,
    /// Authorization codes and refresh tokens in flight.
    pub grants: Mutex<Grants>,
    /// Added to the wall clock for token times (tests move time forward to expire tokens).
    clock_offset_secs: AtomicI64,
    pub started: Instant,
    urls: OnceLock<BaseUrls>,
    request_serial: AtomicU64,
}

impl Sim {
    pub fn new(
        fixture: Fixture,
        settings: Settings,
        rng_seed: Option<u64>,
    ) -> Result<Self, SeedError> {
        let world = World::build(&fixture)?;
        let chaos = Chaos::new(rng_seed);
        let mut secret = [0u8; 32];
        chaos.with_rng(|rng| rng.fill_bytes(&mut secret));
        let instance = chaos.with_rng(RngCore::next_u64);
        Ok(Self {
            instance,
            fixture,
            initial_settings: settings.clone(),
            rng_seed,
            world: RwLock::new(world),
            settings: RwLock::new(settings),
            throttle: Arc::new(Throttle::default()),
            recorder: Recorder::default(),
            chaos,
            gate: Arc::new(Gate::default()),
            tokens: TokenService::new(&secret),
            grants: Mutex::new(Grants::default()),
            clock_offset_secs: AtomicI64::new(0),
            started: Instant::now(),
            urls: OnceLock::new(),
            request_serial: AtomicU64::new(1),
        })
    }

    pub fn set_urls(&self, urls: BaseUrls) {
        // Set once at start; a second call changes nothing.
        let _ = self.urls.set(urls);
    }

    pub fn graph_base(&self) -> &str {
        self.urls.get().map_or("", |u| u.graph.as_str())
    }

    pub fn login_base(&self) -> &str {
        self.urls.get().map_or("", |u| u.login.as_str())
    }

    /// Simulator time in unix seconds (wall clock plus the test's offset).
    pub fn now_unix(&self) -> i64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        wall.saturating_add(self.clock_offset_secs.load(Ordering::Relaxed))
    }

    pub fn advance_clock(&self, secs: i64) {
        self.clock_offset_secs.fetch_add(secs, Ordering::Relaxed);
    }

    pub fn next_request_id(&self) -> String {
        crate::ids::request_id(
            self.instance,
            self.request_serial.fetch_add(1, Ordering::Relaxed),
        )
    }

    pub fn micros_since_start(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_micros() as u64
    }

    /// Back to the seeded state and start settings; logs, counters and grants cleared.
    pub fn reset(&self) -> Result<(), SeedError> {
        let world = World::build(&self.fixture)?;
        *self.world.write() = world;
        *self.settings.write() = self.initial_settings.clone();
        self.throttle.clear();
        self.recorder.clear();
        self.chaos.reseed(self.rng_seed);
        *self.grants.lock() = Grants::default();
        self.clock_offset_secs.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// The primary address of every mailbox and its peak concurrency.
    pub fn peak_concurrency(&self) -> HashMap<String, usize> {
        self.throttle.peak_concurrency()
    }
}
