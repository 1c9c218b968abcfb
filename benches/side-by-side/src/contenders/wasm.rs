//! WebAssembly contenders: wasmtime with a core module called through typed
//! functions, and Extism with a module that reads its input and sets its
//! output through Extism's kernel imports, as the Extism PDK does. Both
//! guests are written in WAT, so building them needs neither a wasm target
//! nor the network. The core guest sums with wasm SIMD, as the native
//! callees are vectorized; the Extism guest reads its input 8 bytes per
//! kernel call as the Extism PDK does, and sums those bytes in scalar code.

use anyhow::{bail, Context, Result};
use wasmtime::{Engine, Instance, Memory, Module, Store, TypedFunc};

use super::Contender;

/// The core module: `add_one(i64) -> i64`, and `sum(ptr, len) -> i64` over
/// bytes the host wrote into the exported memory.
const CORE_WAT: &str = r#"
(module
  (memory (export "memory") 1)
  (func (export "add_one") (param $x i64) (result i64)
    local.get $x
    i64.const 1
    i64.add)
  ;; 16 bytes per step with wasm SIMD, as a guest compiled with simd128
  ;; gets from the compiler: widen to 16-bit, then 32-bit lane sums (no
  ;; overflow below 16 MiB), then a scalar tail.
  (func (export "sum") (param $ptr i32) (param $len i32) (result i64)
    (local $end i32) (local $vend i32) (local $acc v128) (local $s i64)
    local.get $ptr
    local.get $len
    i32.add
    local.set $end
    local.get $ptr
    local.get $len
    i32.const -16
    i32.and
    i32.add
    local.set $vend
    block $vdone
      loop $vnext
        local.get $ptr
        local.get $vend
        i32.ge_u
        br_if $vdone
        local.get $acc
        local.get $ptr
        v128.load
        i16x8.extadd_pairwise_i8x16_u
        i32x4.extadd_pairwise_i16x8_u
        i32x4.add
        local.set $acc
        local.get $ptr
        i32.const 16
        i32.add
        local.set $ptr
        br $vnext
      end
    end
    local.get $acc
    i32x4.extract_lane 0
    i64.extend_i32_u
    local.get $acc
    i32x4.extract_lane 1
    i64.extend_i32_u
    i64.add
    local.get $acc
    i32x4.extract_lane 2
    i64.extend_i32_u
    i64.add
    local.get $acc
    i32x4.extract_lane 3
    i64.extend_i32_u
    i64.add
    local.set $s
    block $done
      loop $next
        local.get $ptr
        local.get $end
        i32.ge_u
        br_if $done
        local.get $s
        local.get $ptr
        i64.load8_u
        i64.add
        local.set $s
        local.get $ptr
        i32.const 1
        i32.add
        local.set $ptr
        br $next
      end
    end
    local.get $s))
"#;

/// The Extism guest: input and output go through the kernel, 8 bytes per
/// import call, as the Extism PDK's `input()` reads them.
const EXTISM_WAT: &str = r#"
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (func $reply (param $v i64)
    (local $at i64)
    i64.const 8
    call $alloc
    local.set $at
    local.get $at
    local.get $v
    call $store_u64
    local.get $at
    i64.const 8
    call $output_set)
  (func (export "add_one") (result i32)
    i64.const 0
    call $input_load_u64
    i64.const 1
    i64.add
    call $reply
    i32.const 0)
  (func (export "sum") (result i32)
    (local $i i64) (local $n i64) (local $w i64) (local $s i64) (local $k i32)
    call $input_length
    local.set $n
    block $done
      loop $next
        local.get $i
        local.get $n
        i64.ge_u
        br_if $done
        local.get $i
        call $input_load_u64
        local.set $w
        i32.const 8
        local.set $k
        loop $bytes
          local.get $s
          local.get $w
          i64.const 255
          i64.and
          i64.add
          local.set $s
          local.get $w
          i64.const 8
          i64.shr_u
          local.set $w
          local.get $k
          i32.const 1
          i32.sub
          local.tee $k
          br_if $bytes
        end
        local.get $i
        i64.const 8
        i64.add
        local.set $i
        br $next
      end
    end
    local.get $s
    call $reply
    i32.const 0))
"#;

/// Where the host writes the payload in the guest's memory.
const PAYLOAD_AT: i32 = 0;

/// A core module instance with its typed entry points.
pub(crate) struct Wasmtime {
    store: Store<()>,
    memory: Memory,
    add_one: TypedFunc<i64, i64>,
    sum: TypedFunc<(i32, i32), i64>,
}

impl Wasmtime {
    pub(crate) fn new() -> Result<Self> {
        let engine = Engine::default();
        let wasm = wat::parse_str(CORE_WAT).context("compiling the core WAT guest")?;
        let module = Module::new(&engine, wasm)?;
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[])?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .context("the core guest exports no memory")?;
        let add_one = instance.get_typed_func(&mut store, "add_one")?;
        let sum = instance.get_typed_func(&mut store, "sum")?;
        Ok(Self {
            store,
            memory,
            add_one,
            sum,
        })
    }
}

impl Contender for Wasmtime {
    #[inline]
    fn add_one(&mut self, x: u64) -> Result<u64> {
        Ok(self.add_one.call(&mut self.store, x as i64)? as u64)
    }

    #[inline]
    fn sum(&mut self, payload: &[u8]) -> Result<u64> {
        self.memory
            .write(&mut self.store, PAYLOAD_AT as usize, payload)?;
        let len = i32::try_from(payload.len()).context("payload larger than 2 GiB")?;
        Ok(self.sum.call(&mut self.store, (PAYLOAD_AT, len))? as u64)
    }
}

/// An Extism plugin without WASI or host functions.
pub(crate) struct Extism(extism::Plugin);

impl Extism {
    pub(crate) fn new() -> Result<Self> {
        let wasm = wat::parse_str(EXTISM_WAT).context("compiling the Extism WAT guest")?;
        let manifest = extism::Manifest::new([extism::Wasm::data(wasm)]);
        Ok(Self(extism::Plugin::new(&manifest, [], false)?))
    }

    fn call(&mut self, function: &str, input: &[u8]) -> Result<u64> {
        let out: &[u8] = self.0.call(function, input)?;
        match <[u8; 8]>::try_from(out) {
            Ok(bytes) => Ok(u64::from_le_bytes(bytes)),
            Err(_) => bail!(
                "the Extism guest's {function} set {} output bytes, not 8",
                out.len()
            ),
        }
    }
}

impl Contender for Extism {
    #[inline]
    fn add_one(&mut self, x: u64) -> Result<u64> {
        self.call("add_one", &x.to_le_bytes())
    }

    #[inline]
    fn sum(&mut self, payload: &[u8]) -> Result<u64> {
        if !payload.len().is_multiple_of(8) {
            bail!(
                "the Extism guest reads 8 bytes at a time; give it a payload whose length is a multiple of 8, not {}",
                payload.len()
            );
        }
        self.call("sum", payload)
    }
}
