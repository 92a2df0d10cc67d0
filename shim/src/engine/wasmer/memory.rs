//! The memory limit for Wasmer: tunables that wrap every linear memory in a cap. A grow
//! past the cap is refused (the guest's `memory.grow` returns -1) and remembered, so that
//! the run ends as Wasmtime's does for the same module: exit 137 and `/tasks/oom`.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmer::sys::vm::{
    ExpectedValue, LinearMemory, MemoryError, MemoryStyle, TableStyle, ThreadConditions, Trap,
    VMMemory, VMMemoryDefinition, VMSharedMemory, VMTable, VMTableDefinition, WaiterError,
};
use wasmer::sys::{BaseTunables, Tunables};
use wasmer::{MemoryType, Pages, TableType};

/// Wasmer's own tunables, with each memory capped at `limit` bytes when there is one.
pub struct CapTunables {
    base: BaseTunables,
    limit: Option<u64>,
    exceeded: Arc<AtomicBool>,
}

impl CapTunables {
    /// Tunables capping memories at `limit`; `exceeded` becomes true on a refused grow.
    pub fn new(limit: Option<u64>, exceeded: Arc<AtomicBool>) -> Self {
        CapTunables {
            base: BaseTunables::new(),
            limit,
            exceeded,
        }
    }

    fn cap(&self, memory: VMMemory) -> VMMemory {
        match self.limit {
            None => memory,
            Some(limit) => VMMemory(Box::new(CappedMemory {
                inner: memory,
                limit,
                exceeded: self.exceeded.clone(),
            })),
        }
    }
}

impl Tunables for CapTunables {
    fn memory_style(&self, memory: &MemoryType) -> MemoryStyle {
        self.base.memory_style(memory)
    }

    fn table_style(&self, table: &TableType) -> TableStyle {
        self.base.table_style(table)
    }

    fn create_host_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
    ) -> Result<VMMemory, MemoryError> {
        self.base.create_host_memory(ty, style).map(|m| self.cap(m))
    }

    unsafe fn create_vm_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
        vm_definition_location: NonNull<VMMemoryDefinition>,
    ) -> Result<VMMemory, MemoryError> {
        // SAFETY: the caller's contract (a valid definition location) is passed on as is.
        unsafe {
            self.base
                .create_vm_memory(ty, style, vm_definition_location)
        }
        .map(|m| self.cap(m))
    }

    fn create_host_table(&self, ty: &TableType, style: &TableStyle) -> Result<VMTable, String> {
        self.base.create_host_table(ty, style)
    }

    unsafe fn create_vm_table(
        &self,
        ty: &TableType,
        style: &TableStyle,
        vm_definition_location: NonNull<VMTableDefinition>,
    ) -> Result<VMTable, String> {
        // SAFETY: the caller's contract (a valid definition location) is passed on as is.
        unsafe { self.base.create_vm_table(ty, style, vm_definition_location) }
    }
}

/// A linear memory that refuses to grow past `limit` bytes.
#[derive(Debug)]
struct CappedMemory {
    inner: VMMemory,
    limit: u64,
    exceeded: Arc<AtomicBool>,
}

impl CappedMemory {
    /// `memory` under the same cap and flag.
    fn with(
        &self,
        memory: Box<dyn LinearMemory + Send + Sync + 'static>,
    ) -> Box<dyn LinearMemory + Send + Sync + 'static> {
        Box::new(CappedMemory {
            inner: VMMemory(memory),
            limit: self.limit,
            exceeded: self.exceeded.clone(),
        })
    }
}

impl LinearMemory for CappedMemory {
    fn ty(&self) -> MemoryType {
        self.inner.ty()
    }

    fn size(&self) -> Pages {
        self.inner.size()
    }

    fn style(&self) -> MemoryStyle {
        self.inner.style()
    }

    fn grow(&mut self, delta: Pages) -> Result<Pages, MemoryError> {
        let desired = (u64::from(self.inner.size().0) + u64::from(delta.0)) * 65536;
        if desired > self.limit {
            self.exceeded.store(true, Ordering::SeqCst);
            return Err(MemoryError::Generic(format!(
                "memory limit of {} bytes exceeded (growing to {desired} bytes)",
                self.limit
            )));
        }
        self.inner.grow(delta)
    }

    fn grow_at_least(&mut self, min_size: u64) -> Result<(), MemoryError> {
        if min_size > self.limit {
            self.exceeded.store(true, Ordering::SeqCst);
            return Err(MemoryError::Generic(format!(
                "memory limit of {} bytes exceeded (growing to {min_size} bytes)",
                self.limit
            )));
        }
        self.inner.grow_at_least(min_size)
    }

    fn reset(&mut self) -> Result<(), MemoryError> {
        self.inner.reset()
    }

    fn vmmemory(&self) -> NonNull<VMMemoryDefinition> {
        self.inner.vmmemory()
    }

    /// A clone (WASIX `fork`) keeps the cap.
    fn try_clone(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        LinearMemory::try_clone(&self.inner).map(|m| self.with(m))
    }

    unsafe fn initialize_with_data(&self, start: usize, data: &[u8]) -> Result<(), Trap> {
        // SAFETY: the caller's contract (data set at initialisation only) is passed on.
        unsafe { self.inner.initialize_with_data(start, data) }
    }

    /// A copy keeps the cap.
    fn copy(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        LinearMemory::copy(&self.inner).map(|m| self.with(m))
    }

    fn as_shared(&self) -> Result<VMSharedMemory, MemoryError> {
        self.inner.as_shared()
    }

    unsafe fn do_wait(
        &mut self,
        dst: u32,
        expected: ExpectedValue,
        timeout: Option<Duration>,
    ) -> Result<u32, WaiterError> {
        // SAFETY: the caller's contract (a valid, aligned address) is passed on as is.
        unsafe { self.inner.do_wait(dst, expected, timeout) }
    }

    fn do_notify(&mut self, dst: u32, count: u32) -> u32 {
        self.inner.do_notify(dst, count)
    }

    fn thread_conditions(&self) -> Option<&ThreadConditions> {
        self.inner.thread_conditions()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grow_past_the_cap_is_refused_and_remembered() {
        let exceeded = Arc::new(AtomicBool::new(false));
        let tunables = CapTunables::new(Some(4 * 65536), exceeded.clone());
        let ty = MemoryType::new(1, None, false);
        let style = tunables.memory_style(&ty);
        let mut memory = tunables.create_host_memory(&ty, &style).unwrap();
        assert_eq!(memory.grow(Pages(3)).unwrap(), Pages(1));
        assert!(!exceeded.load(Ordering::SeqCst));
        assert!(memory.grow(Pages(1)).is_err());
        assert!(exceeded.load(Ordering::SeqCst));
        assert_eq!(memory.size(), Pages(4));
    }

    #[test]
    fn without_a_limit_memories_are_wasmers_own() {
        let exceeded = Arc::new(AtomicBool::new(false));
        let tunables = CapTunables::new(None, exceeded.clone());
        let ty = MemoryType::new(1, None, false);
        let style = tunables.memory_style(&ty);
        let mut memory = tunables.create_host_memory(&ty, &style).unwrap();
        assert!(memory.grow(Pages(100)).is_ok());
        assert!(!exceeded.load(Ordering::SeqCst));
    }
}
