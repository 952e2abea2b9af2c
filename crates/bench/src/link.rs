//! A network link between devices and the relay: a TCP proxy on loopback
//! that counts the bytes in each direction and can act like a weak field
//! connection: a bandwidth cap, a round-trip delay, and a connection that
//! is cut after every so many bytes (as 2G/3G drops do).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What the link does to traffic.
#[derive(Clone, Copy, Debug, Default)]
pub struct Shape {
    /// Bytes per second in each direction (`None`: as fast as loopback).
    pub rate: Option<u64>,
    /// Delay added in each direction (half the round trip).
    pub one_way: Duration,
    /// A connection is cut once it has carried this many bytes (both
    /// directions together).
    pub cut_every: Option<u64>,
}

/// Bytes that crossed the link.
#[derive(Debug, Default)]
pub struct Counters {
    /// Client to relay.
    pub up: AtomicU64,
    /// Relay to client.
    pub down: AtomicU64,
    /// Connections opened.
    pub connections: AtomicU64,
    /// Connections cut.
    pub cuts: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Client to relay.
    pub up: u64,
    /// Relay to client.
    pub down: u64,
    /// Connections opened.
    pub connections: u64,
    /// Connections cut.
    pub cuts: u64,
}

impl Traffic {
    /// What crossed between `earlier` and this snapshot.
    pub fn since(self, earlier: Traffic) -> Traffic {
        Traffic {
            up: self.up - earlier.up,
            down: self.down - earlier.down,
            connections: self.connections - earlier.connections,
            cuts: self.cuts - earlier.cuts,
        }
    }

    /// Both directions.
    pub fn total(self) -> u64 {
        self.up + self.down
    }
}

/// The proxy. Dropping it stops accepting connections.
pub struct Link {
    /// Its port on 127.0.0.1.
    pub port: u16,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
}

impl Link {
    /// A link to the relay on `target` with `shape`.
    pub fn start(target: u16, shape: Shape) -> std::io::Result<Link> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (counters2, stop2) = (counters.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                counters2.connections.fetch_add(1, Ordering::SeqCst);
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let connection = Arc::new(Connection {
                    carried: AtomicU64::new(0),
                    cut: AtomicBool::new(false),
                    shape,
                    counters: counters2.clone(),
                    ends: [client, upstream],
                });
                for direction in [Direction::Up, Direction::Down] {
                    let connection = connection.clone();
                    std::thread::spawn(move || connection.pump(direction));
                }
            }
        });
        Ok(Link {
            port,
            counters,
            stop,
        })
    }

    /// What has crossed so far.
    pub fn traffic(&self) -> Traffic {
        let c = &self.counters;
        Traffic {
            up: c.up.load(Ordering::SeqCst),
            down: c.down.load(Ordering::SeqCst),
            connections: c.connections.load(Ordering::SeqCst),
            cuts: c.cuts.load(Ordering::SeqCst),
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Up,
    Down,
}

/// One proxied connection: `ends[0]` the client, `ends[1]` the relay.
struct Connection {
    carried: AtomicU64,
    cut: AtomicBool,
    shape: Shape,
    counters: Arc<Counters>,
    ends: [TcpStream; 2],
}

impl Connection {
    /// Moves bytes one way: a reader stamps each chunk with its arrival,
    /// a writer delivers it after the delay and at the link's rate.
    fn pump(&self, direction: Direction) {
        let (from, to, counter) = match direction {
            Direction::Up => (&self.ends[0], &self.ends[1], &self.counters.up),
            Direction::Down => (&self.ends[1], &self.ends[0], &self.counters.down),
        };
        let (Ok(mut reader), Ok(mut writer)) = (from.try_clone(), to.try_clone()) else {
            return;
        };
        let (send, receive) = mpsc::channel::<(Instant, Vec<u8>)>();
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let mut buf = [0u8; 1024];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if send.send((Instant::now(), buf[..n].to_vec())).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
            let mut free_at = Instant::now();
            for (arrived, mut chunk) in receive {
                if self.cut.load(Ordering::SeqCst) {
                    break;
                }
                let mut deliver_at = (arrived + self.shape.one_way).max(free_at);
                if let Some(rate) = self.shape.rate {
                    deliver_at += Duration::from_secs_f64(chunk.len() as f64 / rate as f64);
                }
                free_at = deliver_at;
                if let Some(wait) = deliver_at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let mut cut_now = false;
                if let Some(limit) = self.shape.cut_every {
                    let before = self.carried.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                    if before + chunk.len() as u64 >= limit {
                        chunk.truncate(limit.saturating_sub(before) as usize);
                        cut_now = true;
                    }
                }
                if writer.write_all(&chunk).is_err() {
                    break;
                }
                counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                if cut_now {
                    self.cut_off();
                    break;
                }
            }
            let _ = writer.shutdown(Shutdown::Write);
        });
    }

    /// Drops the connection at both ends, as a lost signal does.
    fn cut_off(&self) {
        if !self.cut.swap(true, Ordering::SeqCst) {
            self.counters.cuts.fetch_add(1, Ordering::SeqCst);
        }
        for end in &self.ends {
            let _ = end.shutdown(Shutdown::Both);
        }
    }
}
