<?php
// A netsvr-style business process for wsgate in plain PHP (php-cli, no extension beyond the
// defaults, no framework, no protobuf library): it holds a worker link to each gateway of the
// cluster, answers OnOpen / OnMessage / OnClose, and single-casts to a connection by its id on
// whichever gateway owns it, as `NetBus::singleCast(uniqId, data)` does in netsvr.
//
// Written from docs/protocol.md alone, as examples/python/echo.py is: the protobuf wire format
// (section 3) by hand, for the few fields it uses.
//
//     php examples/php-netsvr/business.php --gateway 127.0.0.1:8081 [--gateway 127.0.0.1:9081] [--token T]
//
// What it does with clients (text frames, JSON):
//   OnOpen     -> {"type":"welcome","conn_id":"<the client's id>"}
//   OnMessage  {"to":"<conn id>","text":"…"} -> that connection gets {"type":"message","from":"<sender>","text":"…"}
//              and the sender {"type":"sent","to":"<conn id>"} (or {"type":"error",…} when gone)
//   OnMessage  anything else -> echoed back to the sender
//   OnClose    -> a line on stderr
// Prints `registered <node_id>` on stdout for each gateway that accepts it.

declare(strict_types=1);

// --- Protobuf wire format (docs/protocol.md section 3) ----------------------------------------

const VARINT = 0;
const LEN = 2;

function varint(int $n): string
{
    $out = '';
    while ($n > 0x7F) {
        $out .= chr(($n & 0x7F) | 0x80);
        $n >>= 7;
    }
    return $out . chr($n);
}

/** One field: ints as varints (0 left out), strings as length-delimited (empty left out unless $always). */
function field(int $number, int|string $value, bool $always = false): string
{
    if (is_int($value)) {
        return $value === 0 ? '' : varint($number << 3 | VARINT) . varint($value);
    }
    if ($value === '' && !$always) {
        return '';
    }
    return varint($number << 3 | LEN) . varint(strlen($value)) . $value;
}

function read_varint(string $buf, int &$pos): int
{
    $value = 0;
    $shift = 0;
    while (true) {
        if ($pos >= strlen($buf) || $shift > 63) {
            throw new UnexpectedValueException('truncated or overlong varint');
        }
        $byte = ord($buf[$pos++]);
        $value |= ($byte & 0x7F) << $shift;
        if ($byte < 0x80) {
            return $value;
        }
        $shift += 7;
    }
}

/** Decodes one message into [field number => [values]]: varints as int, the rest as strings. */
function parse(string $buf): array
{
    $fields = [];
    $pos = 0;
    while ($pos < strlen($buf)) {
        $key = read_varint($buf, $pos);
        $wire = $key & 7;
        if ($wire === VARINT) {
            $value = read_varint($buf, $pos);
        } else {
            $size = match ($wire) {
                LEN => read_varint($buf, $pos),
                1 => 8,
                5 => 4,
                default => throw new UnexpectedValueException("wire type $wire is not used by protobuf 3"),
            };
            if ($pos + $size > strlen($buf)) {
                throw new UnexpectedValueException('truncated field');
            }
            $value = substr($buf, $pos, $size);
            $pos += $size;
        }
        $fields[$key >> 3][] = $value;
    }
    return $fields;
}

/** A singular field: the last value wins; missing is the default. */
function get(array $fields, int $number, int|string $default): int|string
{
    return isset($fields[$number]) ? end($fields[$number]) : $default;
}

// --- Protocol (docs/protocol.md sections 2, 4-6) ---------------------------------------------

const REQUEST_ID = 1;
const REGISTER = 10, REGISTER_OK = 11, ERROR = 12, PING = 13, PONG = 14;
const CONN_OPEN = 20, CONN_MESSAGE = 21, CONN_CLOSE = 22;
const SINGLE_CAST = 30, RESULT = 40;
const UNSUPPORTED = 7;
const KIND_TEXT = 1;

/** One worker link: a socket, what it has read, and the gateway's limits once registered. */
final class Link
{
    public string $buf = '';
    public ?string $nodeId = null;
    public float $interval = 10.0;
    public float $timeout = 30.0;
    public ?float $nextPing = null;
    public float $lastHeard;
    public int $maxFrame = 16 * 1024 * 1024;

    /** @param resource $sock */
    public function __construct(public $sock, public string $addr)
    {
        $this->lastHeard = microtime(true);
    }

    public function send(int $requestId, int $body, string $message): void
    {
        $env = field(REQUEST_ID, $requestId) . varint($body << 3 | LEN) . varint(strlen($message)) . $message;
        $frame = pack('N', strlen($env)) . $env;
        for ($done = 0; $done < strlen($frame);) {
            $n = fwrite($this->sock, substr($frame, $done));
            if ($n === false || $n === 0) {
                throw new RuntimeException("cannot write to the gateway at {$this->addr}");
            }
            $done += $n;
        }
    }

    /** The envelopes complete in the buffer. */
    public function envelopes(): array
    {
        $out = [];
        while (strlen($this->buf) >= 4) {
            $size = unpack('N', $this->buf)[1];
            if ($size > $this->maxFrame) {
                throw new RuntimeException("a frame of $size bytes from {$this->addr} exceeds {$this->maxFrame}");
            }
            if (strlen($this->buf) < 4 + $size) {
                break;
            }
            $out[] = parse(substr($this->buf, 4, $size));
            $this->buf = substr($this->buf, 4 + $size);
        }
        return $out;
    }
}

function say(string $line): void
{
    fwrite(STDERR, "business.php: $line\n");
}

/** The node id of a connection id: everything before its last two '-' (section 18). */
function node_of(string $connId): ?string
{
    $parts = explode('-', $connId);
    return count($parts) >= 3 ? implode('-', array_slice($parts, 0, -2)) : null;
}

final class Business
{
    /** @var array<string, Link> registered links by node id */
    private array $byNode = [];
    private int $nextRequest = 2;

    /** @param Link[] $links */
    public function __construct(private array $links)
    {
    }

    /** NetBus::singleCast: the text to one connection, on the gateway that owns it. */
    private function singleCast(string $connId, string $text): bool
    {
        $link = $this->byNode[node_of($connId) ?? ''] ?? null;
        if ($link === null) {
            return false;
        }
        $payload = field(1, $text, true) . field(2, KIND_TEXT);
        $link->send($this->nextRequest++, SINGLE_CAST, field(1, $connId) . field(2, $payload, true));
        return true;
    }

    private function onOpen(string $connId): void
    {
        $this->singleCast($connId, json_encode(['type' => 'welcome', 'conn_id' => $connId]));
    }

    private function onMessage(string $connId, string $text): void
    {
        $msg = json_decode($text, true);
        if (is_array($msg) && is_string($msg['to'] ?? null) && is_string($msg['text'] ?? null)) {
            $sent = $this->singleCast($msg['to'], json_encode(['type' => 'message', 'from' => $connId, 'text' => $msg['text']]));
            $this->singleCast($connId, json_encode($sent
                ? ['type' => 'sent', 'to' => $msg['to']]
                : ['type' => 'error', 'to' => $msg['to'], 'error' => 'no gateway of this cluster owns that connection id']));
            return;
        }
        $this->singleCast($connId, $text);
    }

    private function onClose(string $connId, int $code): void
    {
        say("connection $connId closed ($code)");
    }

    private function handle(Link $link, array $env): void
    {
        $requestId = (int) get($env, REQUEST_ID, 0);
        $bodies = array_values(array_filter(array_keys($env), fn ($n) => $n !== REQUEST_ID));
        $kind = $bodies ? end($bodies) : 0;
        $body = $kind ? (string) end($env[$kind]) : '';
        switch ($kind) {
            case REGISTER_OK:
                $ok = parse($body);
                $limits = parse((string) get($ok, 3, ''));
                $link->nodeId = (string) get($ok, 1, '');
                $link->maxFrame = (int) get($limits, 1, $link->maxFrame);
                $link->interval = (int) get($limits, 3, 10000) / 1000;
                $link->timeout = (int) get($limits, 4, 30000) / 1000;
                $link->nextPing = microtime(true) + $link->interval;
                $this->byNode[$link->nodeId] = $link;
                echo "registered {$link->nodeId}\n";
                break;
            case PING:
                $link->send($requestId, PONG, '');
                break;
            case CONN_OPEN:
                $this->onOpen((string) get(parse($body), 1, ''));
                break;
            case CONN_MESSAGE:
                $msg = parse($body);
                $payload = parse((string) get($msg, 2, ''));
                $this->onMessage((string) get($msg, 1, ''), (string) get($payload, 1, ''));
                break;
            case CONN_CLOSE:
                $close = parse($body);
                $this->onClose((string) get($close, 1, ''), (int) get($close, 2, 0));
                break;
            case RESULT:
                $result = parse($body);
                $code = (int) get($result, 1, 0);
                if ($code !== 0) {
                    say("request $requestId on {$link->addr}: code $code: " . get($result, 2, ''));
                }
                break;
            case ERROR:
                $err = parse($body);
                say("gateway {$link->addr} error " . get($err, 1, 0) . ': ' . get($err, 2, ''));
                break;
            case PONG:
                break;
            default:
                $link->send($requestId, ERROR, field(1, UNSUPPORTED) . field(2, "business.php does not handle body $kind"));
        }
    }

    /** Runs until a link closes or fails; the exit status. */
    public function run(): int
    {
        while (true) {
            $now = microtime(true);
            $wait = 1.0;
            foreach ($this->links as $link) {
                if ($now - $link->lastHeard >= $link->timeout) {
                    say("heard nothing from {$link->addr} for {$link->timeout}s; closing");
                    return 1;
                }
                if ($link->nextPing !== null && $now >= $link->nextPing) {
                    $link->send(0, PING, '');
                    $link->nextPing = $now + $link->interval;
                }
                if ($link->nextPing !== null) {
                    $wait = min($wait, max(0.0, $link->nextPing - $now));
                }
            }
            $read = array_map(fn (Link $l) => $l->sock, $this->links);
            $write = $except = null;
            $ready = stream_select($read, $write, $except, 0, (int) ($wait * 1e6));
            if ($ready === false) {
                say('stream_select failed');
                return 1;
            }
            foreach ($this->links as $link) {
                if (!in_array($link->sock, $read, true)) {
                    continue;
                }
                $chunk = fread($link->sock, 65536);
                if ($chunk === '' || $chunk === false) {
                    if (feof($link->sock)) {
                        say("the gateway at {$link->addr} closed the link");
                        return 0;
                    }
                    continue;
                }
                $link->buf .= $chunk;
                $link->lastHeard = microtime(true);
                foreach ($link->envelopes() as $env) {
                    $this->handle($link, $env);
                }
            }
        }
    }
}

function main(array $argv): int
{
    $gateways = [];
    $token = '';
    $name = 'netsvr-php';
    for ($i = 1; $i < count($argv); $i++) {
        match ($argv[$i]) {
            '--gateway' => $gateways[] = $argv[++$i] ?? '',
            '--token' => $token = $argv[++$i] ?? '',
            '--name' => $name = $argv[++$i] ?? '',
            default => null,
        };
    }
    if (!$gateways) {
        $gateways = ['127.0.0.1:8081'];
    }
    $links = [];
    foreach ($gateways as $addr) {
        $sock = @stream_socket_client("tcp://$addr", $errno, $errstr, 10);
        if ($sock === false) {
            say("cannot connect to the gateway at $addr: $errstr; is it running with that --worker-addr?");
            return 1;
        }
        stream_set_blocking($sock, true);
        // No read-ahead buffer: stream_select must see every byte not yet read.
        stream_set_read_buffer($sock, 0);
        $link = new Link($sock, $addr);
        // Register: name, token, events OPEN MESSAGE CLOSE (packed), protocol version 1.
        $events = varint(1) . varint(2) . varint(3);
        $link->send(1, REGISTER, field(1, $name) . field(2, $token) . field(3, $events) . field(4, 1));
        $links[] = $link;
    }
    try {
        return (new Business($links))->run();
    } catch (Throwable $e) {
        say($e->getMessage());
        return 1;
    }
}

exit(main($argv));
