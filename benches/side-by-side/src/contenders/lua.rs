//! Lua 5.4 through mlua: the callee is a Lua function; the payload crosses
//! as a Lua string, as a host would pass bytes to a script.

use anyhow::Result;
use mlua::{Function, Lua};

use super::Contender;

const ADD_ONE: &str = "return function(x) return x + 1 end";

/// Eight bytes per `string.byte` call, the fastest plain Lua we found.
const SUM: &str = r#"
local byte = string.byte
return function(p)
  local s, n = 0, #p
  local i = 1
  while i + 7 <= n do
    local a, b, c, d, e, f, g, h = byte(p, i, i + 7)
    s = s + a + b + c + d + e + f + g + h
    i = i + 8
  end
  for j = i, n do s = s + byte(p, j) end
  return s
end
"#;

pub(crate) struct LuaScript {
    lua: Lua,
    add_one: Function,
    sum: Function,
}

impl LuaScript {
    pub(crate) fn new() -> Result<Self> {
        let lua = Lua::new();
        let add_one = lua.load(ADD_ONE).set_name("add_one").eval()?;
        let sum = lua.load(SUM).set_name("sum").eval()?;
        Ok(Self { lua, add_one, sum })
    }

    /// `_VERSION` as the interpreter reports it.
    pub(crate) fn version(&self) -> String {
        self.lua
            .globals()
            .get::<String>("_VERSION")
            .unwrap_or_else(|_| "Lua (unknown version)".to_owned())
    }
}

impl Contender for LuaScript {
    #[inline]
    fn add_one(&mut self, x: u64) -> Result<u64> {
        // Lua integers are i64; the bit pattern round-trips, and the addition wraps.
        Ok(self.add_one.call::<i64>(x as i64)? as u64)
    }

    #[inline]
    fn sum(&mut self, payload: &[u8]) -> Result<u64> {
        let s = self.lua.create_string(payload)?;
        Ok(self.sum.call::<i64>(s)? as u64)
    }
}
