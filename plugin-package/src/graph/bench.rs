//! Synthetic manifest sets for benchmarks; not part of the supported API.

use semver::{Version, VersionReq};

use crate::manifest::{Dependency, Manifest};

/// The shape of a synthetic plugin set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Four roots; every other plugin depends on one or two of them, and
    /// every tenth requires a service the first root provides.
    Wide,
    /// One long chain, each plugin depending on the previous one, with an
    /// optional shortcut to the plugin three back every fifth link.
    Deep,
}

/// `n` manifests of `shape` that resolve without problems, in id order.
pub fn synthetic_manifests(n: usize, shape: Shape) -> Vec<Manifest> {
    const ROOTS: usize = 4;
    (0..n)
        .map(|i| {
            let mut manifest = Manifest::synthetic(&id(i), Version::new(1, (i % 7) as u64, 0));
            let mut depend = |on: usize, optional: bool| {
                manifest
                    .dependencies
                    .insert(id(on), Dependency::new(VersionReq::STAR, optional));
            };
            match shape {
                Shape::Wide if i >= ROOTS => {
                    depend(i % ROOTS, false);
                    depend((i / ROOTS) % ROOTS, false);
                }
                Shape::Wide => {}
                Shape::Deep => {
                    if i >= 1 {
                        depend(i - 1, false);
                    }
                    if i >= 3 && i % 5 == 0 {
                        depend(i - 3, true);
                    }
                }
            }
            if shape == Shape::Wide {
                if i == 0 {
                    manifest.provides.push("sms".to_owned());
                } else if i % 10 == 0 {
                    manifest.requires.push("sms".to_owned());
                }
            }
            manifest
        })
        .collect()
}

fn id(i: usize) -> String {
    format!("p{i:06}")
}
