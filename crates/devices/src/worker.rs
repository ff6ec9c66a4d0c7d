//! The device worker: one thread that owns the sound host and every cpal stream,
//! takes commands from the handles, and every poll interval compares the device lists
//! with the last ones to report what appeared, disappeared or became the default, and
//! moves streams whose device is gone to the default.
//!
//! cpal hosts are not meant to be shared across threads freely and PulseAudio's client
//! is one connection, so one thread does all of it; the handles only see their rings.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::audio::host::AudioHost;
use crate::audio::{AudioBackend, Counters, InputRing, OutputRing, StreamOptions};
use crate::error::DeviceError;
use crate::info::{DeviceId, DeviceInfo, DeviceKind, Selection};
use crate::manager::DeviceEvent;

/// A stream the worker runs, as its handle names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct StreamId(u64);

/// The handles' end of the worker: a command channel.
#[derive(Debug, Clone)]
pub(crate) struct WorkerLink {
    commands: Sender<Command>,
}

type Reply<T> = Sender<Result<T, DeviceError>>;

enum Command {
    List {
        kind: DeviceKind,
        reply: Reply<Vec<DeviceInfo>>,
    },
    HostName {
        reply: Sender<Option<String>>,
    },
    OpenInput {
        selection: Selection,
        options: StreamOptions,
        reply: Reply<(StreamId, InputRing, Receiver<InputRing>)>,
    },
    OpenOutput {
        selection: Selection,
        options: StreamOptions,
        reply: Reply<(StreamId, OutputRing, Receiver<OutputRing>)>,
    },
    Select {
        stream: StreamId,
        selection: Selection,
        reply: Reply<DeviceId>,
    },
    Close {
        stream: StreamId,
    },
}

impl WorkerLink {
    fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, DeviceError> {
        let (reply, answer) = mpsc::channel();
        self.commands
            .send(make(reply))
            .map_err(|_| DeviceError::WorkerStopped)?;
        answer.recv().map_err(|_| DeviceError::WorkerStopped)?
    }

    pub(crate) fn list(&self, kind: DeviceKind) -> Result<Vec<DeviceInfo>, DeviceError> {
        self.request(|reply| Command::List { kind, reply })
    }

    pub(crate) fn host_name(&self) -> Option<String> {
        let (reply, answer) = mpsc::channel();
        self.commands.send(Command::HostName { reply }).ok()?;
        answer.recv().ok().flatten()
    }

    pub(crate) fn open_input(
        &self,
        selection: Selection,
        options: StreamOptions,
    ) -> Result<(StreamId, InputRing, Receiver<InputRing>), DeviceError> {
        self.request(|reply| Command::OpenInput {
            selection,
            options,
            reply,
        })
    }

    pub(crate) fn open_output(
        &self,
        selection: Selection,
        options: StreamOptions,
    ) -> Result<(StreamId, OutputRing, Receiver<OutputRing>), DeviceError> {
        self.request(|reply| Command::OpenOutput {
            selection,
            options,
            reply,
        })
    }

    pub(crate) fn select(
        &self,
        stream: StreamId,
        selection: Selection,
    ) -> Result<DeviceId, DeviceError> {
        self.request(|reply| Command::Select {
            stream,
            selection,
            reply,
        })
    }

    pub(crate) fn close(&self, stream: StreamId) {
        // A stopped worker has dropped every stream already.
        let _ = self.commands.send(Command::Close { stream });
    }
}

/// Where a running stream sends the ring of the device it moves to.
enum Swap {
    Input(Sender<InputRing>),
    Output(Sender<OutputRing>),
}

struct Active {
    kind: DeviceKind,
    selection: Selection,
    device: DeviceId,
    options: StreamOptions,
    counters: Arc<Counters>,
    swap: Swap,
    /// Dropped to stop the device; `None` while no device could be opened.
    stream: Option<cpal::Stream>,
}

/// What the worker knows of one kind's devices.
#[derive(Default)]
struct Known {
    devices: BTreeMap<DeviceId, DeviceInfo>,
    default: Option<DeviceId>,
}

struct Worker {
    host: Result<AudioHost, DeviceError>,
    streams: BTreeMap<StreamId, Active>,
    /// Streams switched away from by the user, still playing out what their ring
    /// holds, and when to drop them.
    draining: Vec<(Instant, cpal::Stream)>,
    known: BTreeMap<DeviceKind, Known>,
    next_stream: u64,
    events: Sender<DeviceEvent>,
    poll_interval: Duration,
    watch_cameras: bool,
}

/// Starts the worker thread.
pub(crate) fn spawn(
    backend: AudioBackend,
    poll_interval: Duration,
    watch_cameras: bool,
    events: Sender<DeviceEvent>,
) -> std::io::Result<WorkerLink> {
    let (commands, inbox) = mpsc::channel();
    std::thread::Builder::new()
        .name("ringwire-devices".to_owned())
        .spawn(move || {
            let mut worker = Worker {
                host: AudioHost::new(backend),
                streams: BTreeMap::new(),
                draining: Vec::new(),
                known: BTreeMap::new(),
                next_stream: 0,
                events,
                poll_interval,
                watch_cameras,
            };
            if let Err(error) = &worker.host {
                tracing::debug!(%error, "no audio host");
            }
            // The first look only learns what is there.
            worker.poll(false);
            worker.run(&inbox);
        })?;
    Ok(WorkerLink { commands })
}

impl Worker {
    fn run(&mut self, inbox: &Receiver<Command>) {
        let mut next_poll = Instant::now() + self.poll_interval;
        loop {
            let now = Instant::now();
            self.draining.retain(|(until, _)| *until > now);
            let wake = self
                .draining
                .iter()
                .map(|(until, _)| *until)
                .fold(next_poll, Instant::min);
            let wait = wake.saturating_duration_since(now);
            match inbox.recv_timeout(wait) {
                // The manager and every stream handle are gone.
                Err(RecvTimeoutError::Disconnected) => return,
                Ok(command) => self.handle(command),
                Err(RecvTimeoutError::Timeout) if Instant::now() >= next_poll => {
                    self.poll(true);
                    next_poll = Instant::now() + self.poll_interval;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::List { kind, reply } => {
                let _ = reply.send(self.list(kind));
            }
            Command::HostName { reply } => {
                let _ = reply.send(self.host.as_ref().ok().map(AudioHost::name));
            }
            Command::OpenInput {
                selection,
                options,
                reply,
            } => {
                let result = self
                    .open_input_with(&selection, &options)
                    .map(|(stream, ring)| {
                        let (tx, rx) = mpsc::channel();
                        let id = self.add_stream(
                            DeviceKind::Microphone,
                            selection,
                            options,
                            &ring.device,
                            &ring.counters,
                            Swap::Input(tx),
                            stream,
                        );
                        (id, ring, rx)
                    });
                let _ = reply.send(result);
            }
            Command::OpenOutput {
                selection,
                options,
                reply,
            } => {
                let result = self
                    .open_output(&selection, &options)
                    .map(|(stream, ring)| {
                        let (tx, rx) = mpsc::channel();
                        let id = self.add_stream(
                            DeviceKind::Speaker,
                            selection,
                            options,
                            &ring.device,
                            &ring.counters,
                            Swap::Output(tx),
                            stream,
                        );
                        (id, ring, rx)
                    });
                let _ = reply.send(result);
            }
            Command::Select {
                stream,
                selection,
                reply,
            } => {
                let result = self.move_stream(stream, selection, true);
                if let Ok(to) = &result
                    && let Some(active) = self.streams.get(&stream)
                {
                    tracing::debug!(kind = %active.kind, %to, "stream switched");
                }
                let _ = reply.send(result);
            }
            Command::Close { stream } => {
                self.streams.remove(&stream);
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // One call site; a struct would only rename them.
    fn add_stream(
        &mut self,
        kind: DeviceKind,
        selection: Selection,
        options: StreamOptions,
        device: &DeviceId,
        counters: &Arc<Counters>,
        swap: Swap,
        stream: cpal::Stream,
    ) -> StreamId {
        let id = StreamId(self.next_stream);
        self.next_stream += 1;
        self.streams.insert(
            id,
            Active {
                kind,
                selection,
                device: device.clone(),
                options,
                counters: Arc::clone(counters),
                swap,
                stream: Some(stream),
            },
        );
        id
    }

    fn host(&self) -> Result<&AudioHost, DeviceError> {
        self.host
            .as_ref()
            .map_err(|error| DeviceError::Unavailable {
                what: "audio host".to_owned(),
                source: error.to_string().into(),
            })
    }

    fn list(&self, kind: DeviceKind) -> Result<Vec<DeviceInfo>, DeviceError> {
        self.host()?.list(kind, true)
    }

    fn open_input_with(
        &self,
        selection: &Selection,
        options: &StreamOptions,
    ) -> Result<(cpal::Stream, InputRing), DeviceError> {
        let host = self.host()?;
        let (device, id) = host.find(DeviceKind::Microphone, selection)?;
        host.open_input(&device, &id, options)
    }

    fn open_output(
        &self,
        selection: &Selection,
        options: &StreamOptions,
    ) -> Result<(cpal::Stream, OutputRing), DeviceError> {
        let host = self.host()?;
        let (device, id) = host.playback_device(selection)?;
        host.open_output(&device, &id, options)
    }

    /// Builds the stream on the new device, hands its ring over, then drops the old
    /// stream (new first, so the gap is only the handover). With `drain`, an old
    /// playback stream first plays out what its ring holds (at most the latency
    /// bound), so a switch loses nothing.
    fn move_stream(
        &mut self,
        stream: StreamId,
        selection: Selection,
        drain: bool,
    ) -> Result<DeviceId, DeviceError> {
        let active = self
            .streams
            .get(&stream)
            .ok_or(DeviceError::WorkerStopped)?;
        let options = active.options;
        let (new_stream, device, counters, handed_over) = match &active.swap {
            Swap::Input(tx) => {
                let (s, ring) = self.open_input_with(&selection, &options)?;
                let (device, counters) = (ring.device.clone(), Arc::clone(&ring.counters));
                (s, device, counters, tx.send(ring).is_ok())
            }
            Swap::Output(tx) => {
                let (s, ring) = self.open_output(&selection, &options)?;
                let (device, counters) = (ring.device.clone(), Arc::clone(&ring.counters));
                (s, device, counters, tx.send(ring).is_ok())
            }
        };
        if !handed_over {
            // The handle is gone; its Close is on the way.
            self.streams.remove(&stream);
            return Ok(device);
        }
        if let Some(active) = self.streams.get_mut(&stream) {
            let old = active.stream.replace(new_stream);
            if let (true, Some(old), Swap::Output(_)) = (drain, old, &active.swap) {
                let until = Instant::now() + options.max_latency + Duration::from_millis(20);
                self.draining.push((until, old));
            }
            active.selection = selection;
            active.device = device.clone();
            active.counters = counters;
        }
        Ok(device)
    }

    /// Compares the device lists with the last ones, reports the differences (when
    /// `report`), and moves streams off devices that are gone.
    fn poll(&mut self, report: bool) {
        let mut kinds = vec![DeviceKind::Microphone, DeviceKind::Speaker];
        if self.watch_cameras {
            kinds.push(DeviceKind::Camera);
        }
        for kind in kinds {
            let listed = match kind {
                DeviceKind::Camera => crate::camera::list().ok(),
                _ => self.host.as_ref().ok().and_then(|host| {
                    host.list(kind, false).ok().map(|mut devices| {
                        // Formats only for devices not seen before (probing is slow on ALSA).
                        let known = self.known.get(&kind);
                        for device in &mut devices {
                            if known.is_none_or(|k| !k.devices.contains_key(&device.id))
                                && let Ok(full) = host.list_one(kind, &device.id)
                            {
                                device.formats = full.formats;
                            }
                        }
                        devices
                    })
                }),
            };
            let Some(listed) = listed else {
                continue;
            };
            let default = listed.iter().find(|d| d.is_default).map(|d| d.id.clone());
            let events = self.events.clone();
            let emit = |event| {
                let _ = events.send(event);
            };
            let known = self.known.entry(kind).or_default();
            let mut now: BTreeMap<DeviceId, DeviceInfo> =
                listed.into_iter().map(|d| (d.id.clone(), d)).collect();
            if report {
                for (id, device) in &now {
                    if !known.devices.contains_key(id) {
                        emit(DeviceEvent::Added {
                            device: device.clone(),
                        });
                    }
                }
                for id in known.devices.keys() {
                    if !now.contains_key(id) {
                        emit(DeviceEvent::Removed {
                            kind,
                            id: id.clone(),
                        });
                    }
                }
                if known.default != default {
                    emit(DeviceEvent::DefaultChanged {
                        kind,
                        id: default.clone(),
                    });
                }
            }
            // Keep the formats learned earlier.
            for (id, device) in &mut now {
                if let Some(old) = known.devices.get(id)
                    && device.formats.is_empty()
                {
                    device.formats.clone_from(&old.formats);
                }
            }
            let default_moved = known.default != default;
            known.devices = now;
            known.default = default;
            if kind != DeviceKind::Camera {
                self.rescue_streams(kind, default_moved && report);
            }
        }
    }

    /// Moves streams of `kind` whose device is gone or broken to the default, and
    /// streams that follow the default to the new one.
    fn rescue_streams(&mut self, kind: DeviceKind, default_moved: bool) {
        let Some(known) = self.known.get(&kind) else {
            return;
        };
        let default = known.default.clone();
        let work: Vec<(StreamId, bool, DeviceId, bool)> = self
            .streams
            .iter()
            .filter(|(_, a)| a.kind == kind)
            .filter_map(|(id, a)| {
                let gone = !known.devices.contains_key(&a.device)
                    || a.counters.lost.load(Relaxed)
                    || a.stream.is_none();
                let follows = a.selection == Selection::Default
                    && default_moved
                    && default.as_ref() != Some(&a.device);
                (gone || follows).then(|| (*id, gone, a.device.clone(), follows))
            })
            .collect();
        for (stream, gone, from, _) in work {
            let mut was_running = false;
            // Stop the dead stream before building its replacement.
            if let Some(active) = self.streams.get_mut(&stream) {
                was_running = active.stream.is_some();
                if gone {
                    active.stream = None;
                }
            }
            match self.move_stream(stream, Selection::Default, !gone) {
                Ok(to) if gone => {
                    tracing::debug!(%kind, %from, %to, "device gone, fell back to the default");
                    self.emit(DeviceEvent::FellBack { kind, from, to });
                }
                Ok(to) => self.emit(DeviceEvent::Switched { kind, from, to }),
                Err(error) => {
                    tracing::debug!(%kind, %from, %error, "no device to fall back to");
                    if was_running {
                        self.emit(DeviceEvent::StreamFailed {
                            kind,
                            device: from,
                            error: error.to_string(),
                        });
                    }
                    if let Some(active) = self.streams.get_mut(&stream) {
                        active.stream = None;
                    }
                }
            }
        }
    }

    fn emit(&self, event: DeviceEvent) {
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }
}
