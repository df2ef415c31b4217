//! The public ways in: [`Engine::compile`] for a draft (every check, the
//! conflict search included) and [`Engine::load`] for a stored version
//! (validated when it was published). Both apply the [budget](crate::budget)
//! first, then run Cedar on a thread whose stack is sized for it.

use crate::compile::CompiledPolicy;
use crate::engine::Engine;
use crate::source::Diagnostic;
use crate::types::Target;

/// Stack of the thread that parses, validates and searches a policy for
/// conflicts. Far more than the worst policy inside the budget needs
/// (measured in `tests.rs`); it is address space, committed only as used.
pub const COMPILE_STACK_BYTES: usize = 64 * 1024 * 1024;

impl Engine {
    /// Compiles a draft; `target` (the city the policy is for), when known,
    /// makes the conflict search use that city.
    ///
    /// The source must first fit the [budget](crate::budget); Cedar then
    /// parses and validates it on a thread of its own with a
    /// [`COMPILE_STACK_BYTES`] stack, whatever thread calls this.
    pub fn compile(
        &self,
        src: &str,
        target: Option<&Target>,
    ) -> Result<CompiledPolicy, Vec<Diagnostic>> {
        self.guarded(src, |engine| {
            let compiled = engine.build(src)?;
            let conflicts = engine.conflicts(&compiled, target);
            if conflicts.is_empty() {
                Ok(compiled)
            } else {
                Err(conflicts)
            }
        })
    }

    /// Compiles a stored policy that was validated when it was published:
    /// the same checks but the conflict search.
    pub fn load(&self, src: &str) -> Result<CompiledPolicy, Vec<Diagnostic>> {
        self.guarded(src, |engine| engine.build(src))
    }

    fn guarded(
        &self,
        src: &str,
        work: impl FnOnce(&Engine) -> Result<CompiledPolicy, Vec<Diagnostic>> + Send,
    ) -> Result<CompiledPolicy, Vec<Diagnostic>> {
        crate::budget::check(src).map_err(|d| vec![d])?;
        let failed = |what: &str| {
            vec![Diagnostic {
                line: 1,
                column: 1,
                rule_id: None,
                message: format!("the policy compiler {what}"),
            }]
        };
        std::thread::scope(|scope| {
            let compiler = std::thread::Builder::new()
                .name("policy-compile".into())
                .stack_size(COMPILE_STACK_BYTES)
                .spawn_scoped(scope, || work(self))
                .map_err(|_| failed("could not start"))?;
            compiler.join().map_err(|_| failed("failed"))?
        })
    }
}
