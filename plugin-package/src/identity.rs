//! Checks that bytes are a complete ELF shared object for this machine before
//! anything hands them to `dlopen`, and reads the plugin's identity record
//! from its `.plugkit_info` section without running any of its code.
//!
//! Why: a truncated `.so` (1,000 or 4,096 bytes of a real one) kills the
//! process with SIGBUS inside `dlopen`, and discovery must learn a library's
//! id and version before deciding to load it. This module does no IO.

use std::fmt;

/// Why bytes are not a loadable shared object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfProblem {
    reason: String,
    /// A whole, intact file of another kind or for another machine: the fix
    /// is a different build, not a new copy.
    foreign: bool,
}

impl ElfProblem {
    /// Whether the file is intact but not a library for this host.
    pub fn is_foreign(&self) -> bool {
        self.foreign
    }
}

impl fmt::Display for ElfProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// A damaged or cut-short file, or one whose kind cannot be told.
fn problem(text: impl Into<String>) -> ElfProblem {
    ElfProblem {
        reason: text.into(),
        foreign: false,
    }
}

/// An intact file that is not a shared library for this host; `text`
/// says what it is and what to build instead.
fn foreign(text: impl Into<String>) -> ElfProblem {
    ElfProblem {
        reason: text.into(),
        foreign: true,
    }
}

/// What a file that is not ELF is, from its first bytes, with what to do.
fn not_elf(bytes: &[u8]) -> ElfProblem {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(b"\xcf\xfa\xed\xfe") || starts(b"\xfe\xed\xfa\xcf") || starts(b"\xca\xfe\xba\xbe") {
        foreign("it is a Mach-O (macOS) binary: build the plugin for Linux")
    } else if starts(b"MZ") {
        foreign("it is a Windows PE file (.dll/.exe): build the plugin for Linux")
    } else if starts(b"!<arch>\n") {
        foreign(
            "it is a static archive (.a/.rlib), not a shared library: give the plugin \
             crate `crate-type = [\"cdylib\"]` and install the `.so` cargo builds",
        )
    } else if starts(b"version https://git-lfs") {
        foreign("it is a Git LFS pointer, not the library itself: fetch it with `git lfs pull`")
    } else if starts(b"\x1f\x8b") || starts(b"PK\x03\x04") || starts(b"\xfd7zXZ") {
        foreign("it is a compressed archive: unpack it and install the `.so` inside")
    } else if starts(b"#!") {
        foreign("it is a script, not a shared library")
    } else {
        problem("no ELF magic number: it is corrupt or not a shared library")
    }
}

const ET_DYN: u16 = 3;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const SHT_NOBITS: u32 = 8;
const HEADER_LEN: usize = 64;
const PHDR_LEN: usize = 56;
const SHDR_LEN: usize = 64;

#[cfg(target_arch = "x86_64")]
const MACHINE: (u16, &str) = (62, "x86_64");
#[cfg(target_arch = "aarch64")]
const MACHINE: (u16, &str) = (183, "aarch64");

/// The common names of ELF machine numbers, for messages.
fn machine_name(machine: u16) -> &'static str {
    match machine {
        3 => "x86 (32-bit)",
        8 => "MIPS",
        20 => "PowerPC",
        21 => "PowerPC64",
        22 => "s390",
        40 => "ARM (32-bit)",
        62 => "x86_64",
        183 => "aarch64",
        243 => "RISC-V",
        258 => "LoongArch",
        _ => "another machine",
    }
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// A section header's interesting fields.
struct Section {
    name: u32,
    kind: u32,
    offset: u64,
    size: u64,
}

/// A validated ELF image.
pub struct Elf<'a> {
    bytes: &'a [u8],
    sections: Vec<Section>,
    names_index: usize,
}

impl<'a> Elf<'a> {
    /// Validates `bytes` as a complete 64-bit little-endian shared object for
    /// this machine whose headers and loadable segments all fit in the file.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ElfProblem> {
        let len = bytes.len() as u64;
        if bytes.len() < HEADER_LEN {
            return Err(problem(format!(
                "only {len} bytes, shorter than an ELF header"
            )));
        }
        if &bytes[..4] != b"\x7fELF" {
            return Err(not_elf(bytes));
        }
        match (bytes[4], bytes[5]) {
            (2, 1) => {}
            (1, _) => {
                return Err(foreign(format!(
                    "it is a 32-bit ELF file, this host loads 64-bit {} libraries: build \
                     the plugin for this host's target",
                    MACHINE.1
                )))
            }
            (2, 2) => {
                return Err(foreign(
                    "it is a big-endian ELF file, this host is little-endian: build the \
                     plugin for this host's target",
                ))
            }
            _ => return Err(problem("its ELF identification bytes are invalid")),
        }
        let short = || problem("ELF header is cut short");
        let kind = u16_at(bytes, 16).ok_or_else(short)?;
        match kind {
            ET_DYN => {}
            1 => {
                return Err(foreign(
                    "it is an object file (.o), not a shared library: install the `.so` \
                     cargo builds for a `cdylib` crate",
                ))
            }
            2 => {
                return Err(foreign(
                    "it is an executable, not a shared library: give the plugin crate \
                     `crate-type = [\"cdylib\"]` and install the `.so` cargo builds",
                ))
            }
            4 => return Err(foreign("it is a core dump, not a shared library")),
            other => {
                return Err(problem(format!(
                    "ELF type {other} is not a shared object (3)"
                )))
            }
        }
        let machine = u16_at(bytes, 18).ok_or_else(short)?;
        if machine != MACHINE.0 {
            return Err(foreign(format!(
                "it was built for {} (ELF machine {machine}), this host is {} ({}): build \
                 the plugin for this host's target",
                machine_name(machine),
                MACHINE.1,
                MACHINE.0
            )));
        }
        let phoff = u64_at(bytes, 32).ok_or_else(short)?;
        let shoff = u64_at(bytes, 40).ok_or_else(short)?;
        let phentsize = u16_at(bytes, 54).ok_or_else(short)?;
        let phnum = u16_at(bytes, 56).ok_or_else(short)?;
        let shentsize = u16_at(bytes, 58).ok_or_else(short)?;
        let shnum = u16_at(bytes, 60).ok_or_else(short)?;
        let shstrndx = u16_at(bytes, 62).ok_or_else(short)?;

        if usize::from(phentsize) != PHDR_LEN || phnum == 0 {
            return Err(problem("no valid program header table"));
        }
        let ph_end = phoff.checked_add(u64::from(phnum) * PHDR_LEN as u64);
        if ph_end.is_none_or(|end| end > len) {
            return Err(problem(format!(
                "program headers end past the end of the file ({len} bytes): the file is truncated"
            )));
        }
        for i in 0..usize::from(phnum) {
            let at = usize::try_from(phoff).map_err(|_| short())? + i * PHDR_LEN;
            let p_type = u32_at(bytes, at).ok_or_else(short)?;
            if p_type != PT_LOAD && p_type != PT_DYNAMIC {
                continue;
            }
            let offset = u64_at(bytes, at + 8).ok_or_else(short)?;
            let filesz = u64_at(bytes, at + 32).ok_or_else(short)?;
            if offset.checked_add(filesz).is_none_or(|end| end > len) {
                return Err(problem(format!(
                    "segment {i} needs bytes {offset}..{} but the file has {len}: the file is truncated",
                    offset.saturating_add(filesz)
                )));
            }
        }

        let mut sections = Vec::new();
        if shnum > 0 {
            if usize::from(shentsize) != SHDR_LEN {
                return Err(problem("section header entries have an unexpected size"));
            }
            let sh_end = shoff.checked_add(u64::from(shnum) * SHDR_LEN as u64);
            if sh_end.is_none_or(|end| end > len) {
                return Err(problem(format!(
                    "section headers end past the end of the file ({len} bytes): the file is truncated"
                )));
            }
            for i in 0..usize::from(shnum) {
                let at = usize::try_from(shoff).map_err(|_| short())? + i * SHDR_LEN;
                let section = Section {
                    name: u32_at(bytes, at).ok_or_else(short)?,
                    kind: u32_at(bytes, at + 4).ok_or_else(short)?,
                    offset: u64_at(bytes, at + 24).ok_or_else(short)?,
                    size: u64_at(bytes, at + 32).ok_or_else(short)?,
                };
                if section.kind != SHT_NOBITS
                    && section
                        .offset
                        .checked_add(section.size)
                        .is_none_or(|end| end > len)
                {
                    return Err(problem(format!(
                        "section {i} ends past the end of the file ({len} bytes): the file is truncated"
                    )));
                }
                sections.push(section);
            }
        }
        Ok(Self {
            bytes,
            sections,
            names_index: usize::from(shstrndx),
        })
    }

    /// The contents of the section called `name`, if there is one.
    pub fn section(&self, name: &str) -> Option<&'a [u8]> {
        let names = self.sections.get(self.names_index)?;
        let names = self.slice(names.offset, names.size)?;
        self.sections.iter().find_map(|s| {
            let start = usize::try_from(s.name).ok()?;
            let rest = names.get(start..)?;
            let end = rest.iter().position(|b| *b == 0)?;
            if &rest[..end] == name.as_bytes() && s.kind != SHT_NOBITS {
                self.slice(s.offset, s.size)
            } else {
                None
            }
        })
    }

    fn slice(&self, offset: u64, size: u64) -> Option<&'a [u8]> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        self.bytes.get(start..end)
    }
}

/// Reads the identity a plugin library embeds, without loading it.
pub fn embedded_identity(bytes: &[u8]) -> Result<plugin_api::sdk::Identity, ElfProblem> {
    let elf = Elf::parse(bytes)?;
    let section = elf.section(".plugkit_info").ok_or_else(|| {
        problem(
            "no .plugkit_info section: the library was not built with plugin_api::export_plugin!",
        )
    })?;
    plugin_api::sdk::parse_identity(section)
        .ok_or_else(|| problem("the .plugkit_info section is malformed"))
}

/// What a plugin library says about itself, read without running its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedIdentity {
    /// The plugin id the library was built as.
    pub id: String,
    /// The plugin version the library was built as.
    pub version: semver::Version,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(machine: u16, kind: u16) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN + PHDR_LEN];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[16..18].copy_from_slice(&kind.to_le_bytes());
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[32..40].copy_from_slice(&(HEADER_LEN as u64).to_le_bytes());
        b[54..56].copy_from_slice(&(PHDR_LEN as u16).to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        // One PT_LOAD covering the headers.
        b[64..68].copy_from_slice(&PT_LOAD.to_le_bytes());
        b[64 + 32..64 + 40].copy_from_slice(&((HEADER_LEN + PHDR_LEN) as u64).to_le_bytes());
        b
    }

    fn check(bytes: &[u8], expected: Result<(), &str>) {
        match (Elf::parse(bytes), expected) {
            (Ok(_), Ok(())) => {}
            (Err(e), Err(needle)) => {
                assert!(e.reason.contains(needle), "{e} should mention {needle}")
            }
            (Ok(_), Err(needle)) => panic!("accepted, expected error mentioning {needle}"),
            (Err(e), Ok(())) => panic!("rejected: {e}"),
        }
    }

    /// `bytes` is intact but not for this host (`true`), or damaged (`false`).
    fn check_foreign(bytes: &[u8], expected: bool, needle: &str) {
        let problem = Elf::parse(bytes).err().expect("refused");
        assert_eq!(problem.is_foreign(), expected, "{problem}");
        assert!(
            problem.reason.contains(needle),
            "{problem} should mention {needle}"
        );
    }

    #[test]
    fn elf_checks_reject_each_kind_of_bad_file() {
        check(&header(MACHINE.0, ET_DYN), Ok(()));
        check(b"", Err("shorter than an ELF header"));
        check(&[0u8; 100], Err("no ELF magic"));
        check(&header(MACHINE.0, 2), Err("an executable"));
        check(&header(MACHINE.0 + 1, ET_DYN), Err("this host is"));
        let mut cut = header(MACHINE.0, ET_DYN);
        cut.truncate(HEADER_LEN + 10);
        check(&cut, Err("program headers end past the end"));
        let mut long_segment = header(MACHINE.0, ET_DYN);
        long_segment[64 + 32..64 + 40].copy_from_slice(&10_000u64.to_le_bytes());
        check(&long_segment, Err("truncated"));
    }

    // Issue 14, item 5: an intact library for another machine or of another
    // kind was reported as "corrupt or copied only in part: reinstall".
    #[test]
    fn intact_files_that_are_not_for_this_host_say_what_they_are() {
        let padded = |start: &[u8]| {
            let mut b = start.to_vec();
            b.resize(HEADER_LEN + PHDR_LEN, 0);
            b
        };
        let other = if MACHINE.0 == 62 { 183 } else { 62 };
        check_foreign(
            &header(other, ET_DYN),
            true,
            "build the plugin for this host's target",
        );
        check_foreign(&header(other, ET_DYN), true, machine_name(other));
        check_foreign(&header(MACHINE.0, 2), true, "crate-type = [\"cdylib\"]");
        check_foreign(&header(MACHINE.0, 1), true, "object file");
        check_foreign(&header(MACHINE.0, 4), true, "core dump");
        let mut bits32 = header(MACHINE.0, ET_DYN);
        bits32[4] = 1;
        check_foreign(&bits32, true, "32-bit ELF");
        let mut big = header(MACHINE.0, ET_DYN);
        big[5] = 2;
        check_foreign(&big, true, "big-endian");
        check_foreign(&padded(b"\xcf\xfa\xed\xfe"), true, "Mach-O");
        check_foreign(&padded(b"MZ\x90\0"), true, "Windows PE");
        check_foreign(&padded(b"!<arch>\n"), true, "static archive");
        check_foreign(
            &padded(b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n"),
            true,
            "git lfs pull",
        );
        check_foreign(&padded(b"\x1f\x8b\x08"), true, "compressed archive");
        check_foreign(&padded(b"#!/bin/sh\n"), true, "script");
        // What cannot be told apart from damage stays damage.
        check_foreign(&padded(b"XELF"), false, "no ELF magic");
        check_foreign(&padded(b"\x7fELF\x03\x01"), false, "identification bytes");
        let mut cut = header(MACHINE.0, ET_DYN);
        cut.truncate(HEADER_LEN + 10);
        check_foreign(&cut, false, "truncated");
    }

    #[test]
    fn identity_record_round_trips() {
        let record: [u8; plugin_api::sdk::__identity_len("twilio", "1.2.3", "sym")] =
            plugin_api::sdk::__identity("twilio", "1.2.3", "sym");
        assert_eq!(
            plugin_api::sdk::parse_identity(&record),
            Some(plugin_api::sdk::Identity {
                id: "twilio".to_owned(),
                version: "1.2.3".to_owned(),
                symbol: Some("sym".to_owned()),
            })
        );
        // Before plugin-api 0.2 the record had no symbol.
        assert_eq!(
            plugin_api::sdk::parse_identity(b"PLUGKIT1twilio\x001.2.3\0"),
            Some(plugin_api::sdk::Identity {
                id: "twilio".to_owned(),
                version: "1.2.3".to_owned(),
                symbol: None,
            })
        );
        assert_eq!(plugin_api::sdk::parse_identity(b"PLUGKIT1\0\0"), None);
    }
}
