"""librdkafka's group admin calls that confluent-kafka 1.7.0 does not wrap, called through
ctypes on the system's librdkafka (2.0.2 on Debian 12): ListConsumerGroups,
ListConsumerGroupOffsets and AlterConsumerGroupOffsets.

These are the requests as every application on that librdkafka sends them, byte for byte
(ListGroups v4, OffsetFetch v7, OffsetCommit v7 on a chronik broker), which is what makes them
worth calling here instead of re-creating the frames by hand.

Each call makes its own client, waits for the one result event and frees everything. A failure
of the whole request (the broker closed the connection, a timeout) raises AdminError with
librdkafka's error name; per-group and per-partition outcomes are returned as error names
("NO_ERROR" when none).
"""

import ctypes

_lib = ctypes.CDLL("librdkafka.so.1")

_P = ctypes.c_void_p


class _TopicPartition(ctypes.Structure):
    _fields_ = [
        ("topic", ctypes.c_char_p),
        ("partition", ctypes.c_int32),
        ("offset", ctypes.c_int64),
        ("metadata", _P),
        ("metadata_size", ctypes.c_size_t),
        ("opaque", _P),
        ("err", ctypes.c_int),
        ("_private", _P),
    ]


class _TopicPartitionList(ctypes.Structure):
    _fields_ = [
        ("cnt", ctypes.c_int),
        ("size", ctypes.c_int),
        ("elems", ctypes.POINTER(_TopicPartition)),
    ]


def _fn(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_conf_new = _fn("rd_kafka_conf_new", _P)
_conf_set = _fn("rd_kafka_conf_set", ctypes.c_int, _P, ctypes.c_char_p, ctypes.c_char_p,
                ctypes.c_char_p, ctypes.c_size_t)
_new = _fn("rd_kafka_new", _P, ctypes.c_int, _P, ctypes.c_char_p, ctypes.c_size_t)
_destroy = _fn("rd_kafka_destroy", None, _P)
_queue_new = _fn("rd_kafka_queue_new", _P, _P)
_queue_destroy = _fn("rd_kafka_queue_destroy", None, _P)
_queue_poll = _fn("rd_kafka_queue_poll", _P, _P, ctypes.c_int)
_event_type = _fn("rd_kafka_event_type", ctypes.c_int, _P)
_event_error = _fn("rd_kafka_event_error", ctypes.c_int, _P)
_event_error_string = _fn("rd_kafka_event_error_string", ctypes.c_char_p, _P)
_event_destroy = _fn("rd_kafka_event_destroy", None, _P)
_err2name = _fn("rd_kafka_err2name", ctypes.c_char_p, ctypes.c_int)
_error_code = _fn("rd_kafka_error_code", ctypes.c_int, _P)
_error_string = _fn("rd_kafka_error_string", ctypes.c_char_p, _P)
_options_new = _fn("rd_kafka_AdminOptions_new", _P, _P, ctypes.c_int)
_options_set_timeout = _fn("rd_kafka_AdminOptions_set_request_timeout", ctypes.c_int, _P,
                           ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
_options_destroy = _fn("rd_kafka_AdminOptions_destroy", None, _P)
_tpl_new = _fn("rd_kafka_topic_partition_list_new", ctypes.POINTER(_TopicPartitionList),
               ctypes.c_int)
_tpl_add = _fn("rd_kafka_topic_partition_list_add", ctypes.POINTER(_TopicPartition),
               ctypes.POINTER(_TopicPartitionList), ctypes.c_char_p, ctypes.c_int32)
_tpl_destroy = _fn("rd_kafka_topic_partition_list_destroy", None,
                   ctypes.POINTER(_TopicPartitionList))
_group_result_error = _fn("rd_kafka_group_result_error", _P, _P)
_group_result_name = _fn("rd_kafka_group_result_name", ctypes.c_char_p, _P)
_group_result_partitions = _fn("rd_kafka_group_result_partitions",
                               ctypes.POINTER(_TopicPartitionList), _P)

_list_groups = _fn("rd_kafka_ListConsumerGroups", None, _P, _P, _P)
_list_groups_result = _fn("rd_kafka_event_ListConsumerGroups_result", _P, _P)
_list_groups_valid = _fn("rd_kafka_ListConsumerGroups_result_valid", ctypes.POINTER(_P), _P,
                         ctypes.POINTER(ctypes.c_size_t))
_list_groups_errors = _fn("rd_kafka_ListConsumerGroups_result_errors", ctypes.POINTER(_P), _P,
                          ctypes.POINTER(ctypes.c_size_t))
_listing_group_id = _fn("rd_kafka_ConsumerGroupListing_group_id", ctypes.c_char_p, _P)

_lgo_new = _fn("rd_kafka_ListConsumerGroupOffsets_new", _P, ctypes.c_char_p,
               ctypes.POINTER(_TopicPartitionList))
_lgo_destroy = _fn("rd_kafka_ListConsumerGroupOffsets_destroy", None, _P)
_lgo = _fn("rd_kafka_ListConsumerGroupOffsets", None, _P, ctypes.POINTER(_P), ctypes.c_size_t,
           _P, _P)
_lgo_result = _fn("rd_kafka_event_ListConsumerGroupOffsets_result", _P, _P)
_lgo_groups = _fn("rd_kafka_ListConsumerGroupOffsets_result_groups", ctypes.POINTER(_P), _P,
                  ctypes.POINTER(ctypes.c_size_t))

_acgo_new = _fn("rd_kafka_AlterConsumerGroupOffsets_new", _P, ctypes.c_char_p,
                ctypes.POINTER(_TopicPartitionList))
_acgo_destroy = _fn("rd_kafka_AlterConsumerGroupOffsets_destroy", None, _P)
_acgo = _fn("rd_kafka_AlterConsumerGroupOffsets", None, _P, ctypes.POINTER(_P), ctypes.c_size_t,
            _P, _P)
_acgo_result = _fn("rd_kafka_event_AlterConsumerGroupOffsets_result", _P, _P)
_acgo_groups = _fn("rd_kafka_AlterConsumerGroupOffsets_result_groups", ctypes.POINTER(_P), _P,
                   ctypes.POINTER(ctypes.c_size_t))

RD_KAFKA_PRODUCER = 0
ADMIN_OP_LISTCONSUMERGROUPS = 12
ADMIN_OP_LISTCONSUMERGROUPOFFSETS = 14
ADMIN_OP_ALTERCONSUMERGROUPOFFSETS = 15
EVENT_LISTCONSUMERGROUPS_RESULT = 0x2000
EVENT_LISTCONSUMERGROUPOFFSETS_RESULT = 0x8000
EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT = 0x10000


class AdminError(Exception):
    """The request as a whole failed; name is librdkafka's error name."""

    def __init__(self, name, text):
        super().__init__("%s: %s" % (name, text))
        self.name = name


def _name(code):
    return _err2name(code).decode()


class _Client:
    def __init__(self, bootstrap, op, timeout_s):
        errstr = ctypes.create_string_buffer(512)
        conf = _conf_new()
        for k, v in (("bootstrap.servers", bootstrap), ("socket.timeout.ms", "%d" % (
                timeout_s * 1000))):
            if _conf_set(conf, k.encode(), v.encode(), errstr, len(errstr)) != 0:
                raise AdminError("CONF", errstr.value.decode())
        self.rk = _new(RD_KAFKA_PRODUCER, conf, errstr, len(errstr))
        if not self.rk:
            raise AdminError("NEW", errstr.value.decode())
        self.queue = _queue_new(self.rk)
        self.options = _options_new(self.rk, op)
        _options_set_timeout(self.options, int(timeout_s * 1000), errstr, len(errstr))
        self.timeout_s = timeout_s
        self.event = None

    def wait(self, event_type):
        """The result event; raises AdminError when the request failed as a whole."""
        self.event = _queue_poll(self.queue, int(self.timeout_s * 1000) + 5000)
        if not self.event:
            raise AdminError("TIMED_OUT", "no result event")
        assert _event_type(self.event) == event_type, _event_type(self.event)
        err = _event_error(self.event)
        if err != 0:
            raise AdminError(_name(err), (_event_error_string(self.event) or b"").decode())
        return self.event

    def close(self):
        if self.event:
            _event_destroy(self.event)
        _options_destroy(self.options)
        _queue_destroy(self.queue)
        _destroy(self.rk)


def _partitions(tpl):
    """{(topic, partition): (offset, error name)} of a result's partition list."""
    out = {}
    if tpl:
        lst = tpl.contents
        for i in range(lst.cnt):
            e = lst.elems[i]
            out[(e.topic.decode(), e.partition)] = (e.offset, _name(e.err))
    return out


def _group_results(groups, n):
    """{group: (group error name, partitions)} of a result's group array."""
    out = {}
    for i in range(n.value):
        g = groups[i]
        err = _group_result_error(g)
        out[_group_result_name(g).decode()] = (
            _name(_error_code(err)) if err else "NO_ERROR", _partitions(
                _group_result_partitions(g)))
    return out


def list_consumer_groups(bootstrap, timeout_s=30):
    """(the ids of the groups listed, the error names of the brokers that failed)."""
    c = _Client(bootstrap, ADMIN_OP_LISTCONSUMERGROUPS, timeout_s)
    try:
        _list_groups(c.rk, c.options, c.queue)
        res = _list_groups_result(c.wait(EVENT_LISTCONSUMERGROUPS_RESULT))
        n = ctypes.c_size_t(0)
        valid = _list_groups_valid(res, ctypes.byref(n))
        ids = [_listing_group_id(valid[i]).decode() for i in range(n.value)]
        errs = _list_groups_errors(res, ctypes.byref(n))
        errors = [(_name(_error_code(errs[i])), (_error_string(errs[i]) or b"").decode())
                  for i in range(n.value)]
        return ids, errors
    finally:
        c.close()


def list_consumer_group_offsets(bootstrap, group, partitions=None, timeout_s=30):
    """(group error name, {(topic, partition): (offset, error name)}); partitions None asks
    for all of the group's offsets (OffsetFetch with null topics)."""
    c = _Client(bootstrap, ADMIN_OP_LISTCONSUMERGROUPOFFSETS, timeout_s)
    tpl = None
    req = None
    try:
        if partitions is not None:
            tpl = _tpl_new(len(partitions))
            for topic, p in partitions:
                _tpl_add(tpl, topic.encode(), p)
        req = _lgo_new(group.encode(), tpl)
        arr = (_P * 1)(req)
        _lgo(c.rk, arr, 1, c.options, c.queue)
        res = _lgo_result(c.wait(EVENT_LISTCONSUMERGROUPOFFSETS_RESULT))
        n = ctypes.c_size_t(0)
        return _group_results(_lgo_groups(res, ctypes.byref(n)), n)[group]
    finally:
        if req:
            _lgo_destroy(req)
        if tpl:
            _tpl_destroy(tpl)
        c.close()


def alter_consumer_group_offsets(bootstrap, group, offsets, timeout_s=30):
    """offsets: [(topic, partition, offset)]. Returns (group error name,
    {(topic, partition): (offset, error name)})."""
    c = _Client(bootstrap, ADMIN_OP_ALTERCONSUMERGROUPOFFSETS, timeout_s)
    tpl = _tpl_new(len(offsets))
    req = None
    try:
        for topic, p, off in offsets:
            _tpl_add(tpl, topic.encode(), p).contents.offset = off
        req = _acgo_new(group.encode(), tpl)
        arr = (_P * 1)(req)
        _acgo(c.rk, arr, 1, c.options, c.queue)
        res = _acgo_result(c.wait(EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT))
        n = ctypes.c_size_t(0)
        return _group_results(_acgo_groups(res, ctypes.byref(n)), n)[group]
    finally:
        if req:
            _acgo_destroy(req)
        _tpl_destroy(tpl)
        c.close()
