//! Alarms (etcd `etcdserver/api/v3alarm`): NOSPACE when the backend quota is exceeded, CORRUPT
//! when data corruption was detected. The table is replicated (ACTIVATE / DEACTIVATE go through
//! raft and apply) and kept in the `meta` keyspace.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use prost::Message;

use crate::error::StorageError;
use crate::proto::etcdserverpb::{AlarmMember, AlarmResponse, AlarmType};
use crate::storage::{Storage, schema};

/// The alarm table.
#[derive(Debug, Default)]
pub struct Alarms {
    set: Mutex<BTreeSet<(u64, i32)>>,
}

impl Alarms {
    /// Loads the table from `storage`.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] when the stored table does not decode.
    pub fn load(storage: &Storage) -> Result<Arc<Alarms>, StorageError> {
        let alarms = Arc::new(Alarms::default());
        alarms.reload(storage)?;
        Ok(alarms)
    }

    /// Replaces the table with the stored one (start-up, snapshot install).
    ///
    /// # Errors
    /// As [`Alarms::load`].
    pub fn reload(&self, storage: &Storage) -> Result<(), StorageError> {
        let set = match storage.meta.get(schema::META_ALARMS)? {
            None => BTreeSet::new(),
            Some(v) => AlarmResponse::decode(v.as_ref())
                .map_err(|e| StorageError::Corrupt(format!("alarm table: {e}")))?
                .alarms
                .into_iter()
                .map(|a| (a.member_id, a.alarm))
                .collect(),
        };
        *self.lock() = set;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, BTreeSet<(u64, i32)>> {
        self.set.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Active alarms of `kind` (`NONE` = every kind), as etcd's `alarmStore.Get`.
    pub fn get(&self, kind: i32) -> Vec<AlarmMember> {
        self.lock()
            .iter()
            .filter(|(_, a)| kind == AlarmType::None as i32 || *a == kind)
            .map(|&(member_id, alarm)| AlarmMember { member_id, alarm })
            .collect()
    }

    /// Whether an alarm of `kind` is active on any member.
    pub fn is_active(&self, kind: AlarmType) -> bool {
        self.lock().iter().any(|(_, a)| *a == kind as i32)
    }

    /// Apply: raises an alarm; `None` for `NONE` or an alarm already raised.
    pub fn activate(&self, member_id: u64, alarm: i32) -> Option<AlarmMember> {
        if alarm == AlarmType::None as i32 {
            return None;
        }
        self.lock()
            .insert((member_id, alarm))
            .then_some(AlarmMember { member_id, alarm })
    }

    /// Apply: clears an alarm; `None` when it was not raised.
    pub fn deactivate(&self, member_id: u64, alarm: i32) -> Option<AlarmMember> {
        self.lock()
            .remove(&(member_id, alarm))
            .then_some(AlarmMember { member_id, alarm })
    }

    /// The table as stored.
    pub fn encoded(&self) -> Vec<u8> {
        AlarmResponse {
            header: None,
            alarms: self.get(AlarmType::None as i32),
        }
        .encode_to_vec()
    }

    /// The Status `errors` entries: the (gogoproto compact) text form of each alarm, trailing
    /// space included, exactly as etcd reports them (`memberID:7 alarm:NOSPACE `).
    pub fn status_errors(&self) -> Vec<String> {
        self.get(AlarmType::None as i32)
            .iter()
            .map(|a| format!("memberID:{} alarm:{} ", a.member_id, alarm_name(a.alarm)))
            .collect()
    }
}

/// etcd's name of an alarm type.
pub fn alarm_name(alarm: i32) -> &'static str {
    match AlarmType::try_from(alarm) {
        Ok(AlarmType::Nospace) => "NOSPACE",
        Ok(AlarmType::Corrupt) => "CORRUPT",
        Ok(AlarmType::None) => "NONE",
        Err(_) => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_is_idempotent_and_get_filters_by_kind() {
        let a = Alarms::default();
        assert!(a.activate(7, AlarmType::Nospace as i32).is_some());
        assert!(a.activate(7, AlarmType::Nospace as i32).is_none());
        assert!(a.activate(7, AlarmType::None as i32).is_none());
        assert_eq!(a.get(AlarmType::Corrupt as i32), vec![]);
        assert_eq!(a.get(AlarmType::None as i32).len(), 1);
        assert_eq!(a.status_errors(), vec!["memberID:7 alarm:NOSPACE ".to_string()]);
        assert!(a.deactivate(7, AlarmType::Nospace as i32).is_some());
        assert!(!a.is_active(AlarmType::Nospace));
    }
}
