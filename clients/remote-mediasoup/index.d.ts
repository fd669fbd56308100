// Type declarations of remote-mediasoup (hand-written).
// The API is mediasoup's (3.14) Node API; the objects live on a Mafalda Swarm
// node reached over ROPE (JSON over WebSocket).

import { EventEmitter } from 'node:events';

export type AppData = { [key: string]: unknown };

// ---------------------------------------------------------------- errors

export class UnsupportedError extends Error {
	constructor(message: string);
}

export class InvalidStateError extends Error {
	constructor(message: string);
}

// ---------------------------------------------------------------- events

export class EnhancedEventEmitter<E extends Record<string, any[]> = Record<string, any[]>> extends EventEmitter {
	safeEmit<K extends keyof E & string>(eventName: K, ...args: E[K]): boolean;
	safeEmitAsPromise<K extends keyof E & string>(eventName: K, ...args: E[K]): Promise<any>;
	on<K extends keyof E & string>(eventName: K, listener: (...args: E[K]) => void): this;
	once<K extends keyof E & string>(eventName: K, listener: (...args: E[K]) => void): this;
	off<K extends keyof E & string>(eventName: K, listener: (...args: E[K]) => void): this;
}

type ListenerError = { listenererror: [string, Error] };

// ---------------------------------------------------------------- RTP / SCTP / SRTP

export type MediaKind = 'audio' | 'video';

export interface RtcpFeedback {
	type: string;
	parameter?: string;
}

export interface RtpCodecCapability {
	kind: MediaKind;
	mimeType: string;
	preferredPayloadType?: number;
	clockRate: number;
	channels?: number;
	parameters?: any;
	rtcpFeedback?: RtcpFeedback[];
}

export interface RtpHeaderExtension {
	kind: MediaKind;
	uri: string;
	preferredId: number;
	preferredEncrypt?: boolean;
	direction?: 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
}

export interface RtpCapabilities {
	codecs?: RtpCodecCapability[];
	headerExtensions?: RtpHeaderExtension[];
}

export interface RtpCodecParameters {
	mimeType: string;
	payloadType: number;
	clockRate: number;
	channels?: number;
	parameters?: any;
	rtcpFeedback?: RtcpFeedback[];
}

export interface RtpHeaderExtensionParameters {
	uri: string;
	id: number;
	encrypt?: boolean;
	parameters?: any;
}

export interface RtpEncodingParameters {
	ssrc?: number;
	rid?: string;
	codecPayloadType?: number;
	rtx?: { ssrc: number };
	dtx?: boolean;
	scalabilityMode?: string;
	scaleResolutionDownBy?: number;
	maxBitrate?: number;
}

export interface RtcpParameters {
	cname?: string;
	reducedSize?: boolean;
}

export interface RtpParameters {
	mid?: string;
	codecs: RtpCodecParameters[];
	headerExtensions?: RtpHeaderExtensionParameters[];
	encodings?: RtpEncodingParameters[];
	rtcp?: RtcpParameters;
}

export interface NumSctpStreams {
	OS: number;
	MIS: number;
}

export interface SctpCapabilities {
	numStreams: NumSctpStreams;
}

export interface SctpParameters {
	port: number;
	OS: number;
	MIS: number;
	maxMessageSize: number;
}

export interface SctpStreamParameters {
	streamId: number;
	ordered?: boolean;
	maxPacketLifeTime?: number;
	maxRetransmits?: number;
}

export type SrtpCryptoSuite =
	| 'AEAD_AES_256_GCM'
	| 'AEAD_AES_128_GCM'
	| 'AES_CM_128_HMAC_SHA1_80'
	| 'AES_CM_128_HMAC_SHA1_32';

export interface SrtpParameters {
	cryptoSuite: SrtpCryptoSuite;
	keyBase64: string;
}

export interface ScalabilityMode {
	spatialLayers: number;
	temporalLayers: number;
	ksvc: boolean;
}

// ---------------------------------------------------------------- transports' common types

export type TransportProtocol = 'udp' | 'tcp';

export interface TransportPortRange {
	min: number;
	max: number;
}

export interface TransportSocketFlags {
	ipv6Only?: boolean;
	udpReusePort?: boolean;
}

export interface TransportListenInfo {
	protocol: TransportProtocol;
	ip: string;
	announcedAddress?: string;
	/** @deprecated Use announcedAddress. */
	announcedIp?: string;
	port?: number;
	portRange?: TransportPortRange;
	flags?: TransportSocketFlags;
	sendBufferSize?: number;
	recvBufferSize?: number;
}

export interface TransportListenIp {
	ip: string;
	announcedIp?: string;
}

export interface TransportTuple {
	localAddress: string;
	/** @deprecated Use localAddress. */
	localIp?: string;
	localPort: number;
	remoteIp?: string;
	remotePort?: number;
	protocol: TransportProtocol;
}

export type SctpState = 'new' | 'connecting' | 'connected' | 'failed' | 'closed';

export type TransportTraceEventType = 'probation' | 'bwe';

export interface TransportTraceEventData {
	type: TransportTraceEventType;
	timestamp: number;
	direction: 'in' | 'out';
	info: any;
}

// ---------------------------------------------------------------- worker

export type WorkerLogLevel = 'debug' | 'warn' | 'error' | 'none';

export type WorkerLogTag =
	| 'info'
	| 'ice'
	| 'dtls'
	| 'rtp'
	| 'srtp'
	| 'rtcp'
	| 'rtx'
	| 'bwe'
	| 'score'
	| 'simulcast'
	| 'svc'
	| 'sctp'
	| 'message';

export interface WorkerSettings<WorkerAppData extends AppData = AppData> {
	logLevel?: WorkerLogLevel;
	logTags?: WorkerLogTag[];
	rtcMinPort?: number;
	rtcMaxPort?: number;
	/** A file on the node (admin token or a node without tokens). */
	dtlsCertificateFile?: string;
	/** A file on the node (admin token or a node without tokens). */
	dtlsPrivateKeyFile?: string;
	libwebrtcFieldTrials?: string;
	disableLiburing?: boolean;
	appData?: WorkerAppData;
	/** Peer id of the node to create the worker on (default: MAFALDA_WORKER_NODE, else the node connected to). */
	node?: string;
}

export type WorkerUpdateableSettings = Pick<WorkerSettings, 'logLevel' | 'logTags'>;

export interface WorkerResourceUsage {
	ru_utime: number;
	ru_stime: number;
	ru_maxrss: number;
	ru_ixrss: number;
	ru_idrss: number;
	ru_isrss: number;
	ru_minflt: number;
	ru_majflt: number;
	ru_nswap: number;
	ru_inblock: number;
	ru_oublock: number;
	ru_msgsnd: number;
	ru_msgrcv: number;
	ru_nsignals: number;
	ru_nvcsw: number;
	ru_nivcsw: number;
}

export type WorkerEvents = ListenerError & { died: [Error]; subprocessclose: [] };

export type WorkerObserverEvents = {
	close: [];
	newwebrtcserver: [WebRtcServer];
	newrouter: [Router];
};

export class Worker<WorkerAppData extends AppData = AppData> extends EnhancedEventEmitter<WorkerEvents> {
	/** The node's process id (workers are threads there). */
	get pid(): number;
	get closed(): boolean;
	get died(): boolean;
	get subprocessClosed(): boolean;
	get appData(): WorkerAppData;
	set appData(appData: WorkerAppData);
	get observer(): EnhancedEventEmitter<WorkerObserverEvents>;
	get webRtcServersForTesting(): Set<WebRtcServer>;
	get routersForTesting(): Set<Router>;
	close(): void;
	dump(): Promise<any>;
	getResourceUsage(): Promise<WorkerResourceUsage>;
	updateSettings(settings?: WorkerUpdateableSettings): Promise<void>;
	createWebRtcServer<A extends AppData = AppData>(options: WebRtcServerOptions<A>): Promise<WebRtcServer<A>>;
	createRouter<A extends AppData = AppData>(options?: RouterOptions<A>): Promise<Router<A>>;
}

// ---------------------------------------------------------------- WebRTC server

export interface WebRtcServerOptions<A extends AppData = AppData> {
	listenInfos: TransportListenInfo[];
	appData?: A;
}

export type WebRtcServerEvents = ListenerError & { workerclose: [] };

export type WebRtcServerObserverEvents = {
	close: [];
	webrtctransporthandled: [WebRtcTransport];
	webrtctransportunhandled: [WebRtcTransport];
};

export class WebRtcServer<A extends AppData = AppData> extends EnhancedEventEmitter<WebRtcServerEvents> {
	get id(): string;
	/** The node's ROPE id of the object (its id, except a pipe producer in its producer's connection). */
	get objectId(): string;
	get closed(): boolean;
	get appData(): A;
	set appData(appData: A);
	get observer(): EnhancedEventEmitter<WebRtcServerObserverEvents>;
	get webRtcTransportsForTesting(): Map<string, WebRtcTransport>;
	close(): void;
	dump(): Promise<any>;
}

// ---------------------------------------------------------------- router

export interface RouterOptions<A extends AppData = AppData> {
	mediaCodecs?: RtpCodecCapability[];
	appData?: A;
}

export interface PipeToRouterOptions {
	producerId?: string;
	dataProducerId?: string;
	router: Router;
	listenInfo?: TransportListenInfo;
	listenIp?: TransportListenIp | string;
	enableSctp?: boolean;
	numSctpStreams?: NumSctpStreams;
	enableRtx?: boolean;
	enableSrtp?: boolean;
}

export interface PipeToRouterResult {
	pipeConsumer?: Consumer;
	pipeProducer?: Producer;
	pipeDataConsumer?: DataConsumer;
	pipeDataProducer?: DataProducer;
}

export type RouterEvents = ListenerError & { workerclose: [] };

export type RouterObserverEvents = {
	close: [];
	newtransport: [Transport];
	newrtpobserver: [RtpObserver];
};

export class Router<A extends AppData = AppData> extends EnhancedEventEmitter<RouterEvents> {
	get id(): string;
	/** The node's ROPE id of the object (its id, except a pipe producer in its producer's connection). */
	get objectId(): string;
	get closed(): boolean;
	get rtpCapabilities(): RtpCapabilities;
	get appData(): A;
	set appData(appData: A);
	get observer(): EnhancedEventEmitter<RouterObserverEvents>;
	get transportsForTesting(): Map<string, Transport>;
	close(): void;
	dump(): Promise<any>;
	createWebRtcTransport<T extends AppData = AppData>(options: WebRtcTransportOptions<T>): Promise<WebRtcTransport<T>>;
	createPlainTransport<T extends AppData = AppData>(options: PlainTransportOptions<T>): Promise<PlainTransport<T>>;
	createPipeTransport<T extends AppData = AppData>(options: PipeTransportOptions<T>): Promise<PipeTransport<T>>;
	createDirectTransport<T extends AppData = AppData>(options?: DirectTransportOptions<T>): Promise<DirectTransport<T>>;
	pipeToRouter(options: PipeToRouterOptions): Promise<PipeToRouterResult>;
	createActiveSpeakerObserver<T extends AppData = AppData>(
		options?: ActiveSpeakerObserverOptions<T>
	): Promise<ActiveSpeakerObserver<T>>;
	createAudioLevelObserver<T extends AppData = AppData>(
		options?: AudioLevelObserverOptions<T>
	): Promise<AudioLevelObserver<T>>;
	/** Decided locally from the producer's consumable RTP parameters. */
	canConsume(options: { producerId: string; rtpCapabilities: RtpCapabilities }): boolean;
}

// ---------------------------------------------------------------- transports

export type TransportEvents = ListenerError & {
	routerclose: [];
	listenserverclose: [];
	trace: [TransportTraceEventData];
};

export type TransportObserverEvents = {
	close: [];
	newproducer: [Producer];
	newconsumer: [Consumer];
	newdataproducer: [DataProducer];
	newdataconsumer: [DataConsumer];
	trace: [TransportTraceEventData];
};

export class Transport<A extends AppData = AppData, E extends Record<string, any[]> = TransportEvents, O extends Record<string, any[]> = TransportObserverEvents> extends EnhancedEventEmitter<E> {
	get id(): string;
	/** The node's ROPE id of the object (its id, except a pipe producer in its producer's connection). */
	get objectId(): string;
	get closed(): boolean;
	get appData(): A;
	set appData(appData: A);
	get observer(): EnhancedEventEmitter<O>;
	close(): void;
	dump(): Promise<any>;
	getStats(): Promise<any[]>;
	connect(params: any): Promise<void>;
	setMaxIncomingBitrate(bitrate: number): Promise<void>;
	setMaxOutgoingBitrate(bitrate: number): Promise<void>;
	setMinOutgoingBitrate(bitrate: number): Promise<void>;
	produce<P extends AppData = AppData>(options: ProducerOptions<P>): Promise<Producer<P>>;
	consume<C extends AppData = AppData>(options: ConsumerOptions<C>): Promise<Consumer<C>>;
	produceData<P extends AppData = AppData>(options?: DataProducerOptions<P>): Promise<DataProducer<P>>;
	consumeData<C extends AppData = AppData>(options: DataConsumerOptions<C>): Promise<DataConsumer<C>>;
	enableTraceEvent(types?: TransportTraceEventType[]): Promise<void>;
}

export type IceState = 'new' | 'connected' | 'completed' | 'disconnected' | 'closed';
export type DtlsState = 'new' | 'connecting' | 'connected' | 'failed' | 'closed';
export type DtlsRole = 'auto' | 'client' | 'server';

export interface IceParameters {
	usernameFragment: string;
	password: string;
	iceLite?: boolean;
}

export interface IceCandidate {
	foundation: string;
	priority: number;
	address: string;
	/** @deprecated Use address. */
	ip: string;
	protocol: TransportProtocol;
	port: number;
	type: 'host';
	tcpType?: 'passive';
}

export interface DtlsFingerprint {
	algorithm: string;
	value: string;
}

export interface DtlsParameters {
	role?: DtlsRole;
	fingerprints: DtlsFingerprint[];
}

export interface WebRtcTransportOptions<A extends AppData = AppData> {
	webRtcServer?: WebRtcServer;
	listenInfos?: TransportListenInfo[];
	/** @deprecated Use listenInfos. */
	listenIps?: (TransportListenIp | string)[];
	port?: number;
	enableUdp?: boolean;
	enableTcp?: boolean;
	preferUdp?: boolean;
	preferTcp?: boolean;
	iceConsentTimeout?: number;
	initialAvailableOutgoingBitrate?: number;
	enableSctp?: boolean;
	numSctpStreams?: NumSctpStreams;
	maxSctpMessageSize?: number;
	sctpSendBufferSize?: number;
	appData?: A;
}

export type WebRtcTransportEvents = TransportEvents & {
	icestatechange: [IceState];
	iceselectedtuplechange: [TransportTuple];
	dtlsstatechange: [DtlsState];
	sctpstatechange: [SctpState];
};

export type WebRtcTransportObserverEvents = TransportObserverEvents & {
	icestatechange: [IceState];
	iceselectedtuplechange: [TransportTuple];
	dtlsstatechange: [DtlsState];
	sctpstatechange: [SctpState];
};

export class WebRtcTransport<A extends AppData = AppData> extends Transport<A, WebRtcTransportEvents, WebRtcTransportObserverEvents> {
	get iceRole(): 'controlled';
	get iceParameters(): IceParameters;
	get iceCandidates(): IceCandidate[];
	get iceState(): IceState;
	get iceSelectedTuple(): TransportTuple | undefined;
	get dtlsParameters(): DtlsParameters;
	get dtlsState(): DtlsState;
	get dtlsRemoteCert(): string | undefined;
	get sctpParameters(): SctpParameters | undefined;
	get sctpState(): SctpState | undefined;
	connect(params: { dtlsParameters: DtlsParameters }): Promise<void>;
	restartIce(): Promise<IceParameters>;
}

export interface PlainTransportOptions<A extends AppData = AppData> {
	listenInfo?: TransportListenInfo;
	rtcpListenInfo?: TransportListenInfo;
	/** @deprecated Use listenInfo. */
	listenIp?: TransportListenIp | string;
	port?: number;
	rtcpMux?: boolean;
	comedia?: boolean;
	enableSctp?: boolean;
	numSctpStreams?: NumSctpStreams;
	maxSctpMessageSize?: number;
	sctpSendBufferSize?: number;
	enableSrtp?: boolean;
	srtpCryptoSuite?: SrtpCryptoSuite;
	appData?: A;
}

export type PlainTransportEvents = TransportEvents & {
	tuple: [TransportTuple];
	rtcptuple: [TransportTuple];
	sctpstatechange: [SctpState];
};

export type PlainTransportObserverEvents = TransportObserverEvents & {
	tuple: [TransportTuple];
	rtcptuple: [TransportTuple];
	sctpstatechange: [SctpState];
};

export class PlainTransport<A extends AppData = AppData> extends Transport<A, PlainTransportEvents, PlainTransportObserverEvents> {
	get tuple(): TransportTuple;
	get rtcpTuple(): TransportTuple | undefined;
	get sctpParameters(): SctpParameters | undefined;
	get sctpState(): SctpState | undefined;
	get srtpParameters(): SrtpParameters | undefined;
	connect(params: { ip?: string; port?: number; rtcpPort?: number; srtpParameters?: SrtpParameters }): Promise<void>;
}

export interface PipeTransportOptions<A extends AppData = AppData> {
	listenInfo?: TransportListenInfo;
	/** @deprecated Use listenInfo. */
	listenIp?: TransportListenIp | string;
	port?: number;
	enableSctp?: boolean;
	numSctpStreams?: NumSctpStreams;
	maxSctpMessageSize?: number;
	sctpSendBufferSize?: number;
	enableRtx?: boolean;
	enableSrtp?: boolean;
	appData?: A;
}

export type PipeTransportEvents = TransportEvents & { sctpstatechange: [SctpState] };
export type PipeTransportObserverEvents = TransportObserverEvents & { sctpstatechange: [SctpState] };

export class PipeTransport<A extends AppData = AppData> extends Transport<A, PipeTransportEvents, PipeTransportObserverEvents> {
	get tuple(): TransportTuple;
	get sctpParameters(): SctpParameters | undefined;
	get sctpState(): SctpState | undefined;
	get srtpParameters(): SrtpParameters | undefined;
	connect(params: { ip: string; port: number; srtpParameters?: SrtpParameters }): Promise<void>;
	consume<C extends AppData = AppData>(options: { producerId: string; appData?: C }): Promise<Consumer<C>>;
}

export interface DirectTransportOptions<A extends AppData = AppData> {
	maxMessageSize?: number;
	appData?: A;
}

export type DirectTransportEvents = TransportEvents & { rtcp: [Buffer] };

export class DirectTransport<A extends AppData = AppData> extends Transport<A, DirectTransportEvents> {
	connect(): Promise<void>;
	sendRtcp(rtcpPacket: Buffer): void;
}

// ---------------------------------------------------------------- producers and consumers

export type ProducerType = 'simple' | 'simulcast' | 'svc';
export type ProducerTraceEventType = 'rtp' | 'keyframe' | 'nack' | 'pli' | 'fir' | 'sr';

export interface ProducerOptions<A extends AppData = AppData> {
	id?: string;
	kind: MediaKind;
	rtpParameters: RtpParameters;
	paused?: boolean;
	keyFrameRequestDelay?: number;
	appData?: A;
}

export interface ProducerScore {
	encodingIdx: number;
	ssrc: number;
	rid?: string;
	score: number;
}

export interface ProducerVideoOrientation {
	camera: boolean;
	flip: boolean;
	rotation: number;
}

export type ProducerEvents = ListenerError & {
	transportclose: [];
	score: [ProducerScore[]];
	videoorientationchange: [ProducerVideoOrientation];
	trace: [any];
};

export type ProducerObserverEvents = {
	close: [];
	pause: [];
	resume: [];
	score: [ProducerScore[]];
	videoorientationchange: [ProducerVideoOrientation];
	trace: [any];
};

export class Producer<A extends AppData = AppData> extends EnhancedEventEmitter<ProducerEvents> {
	get id(): string;
	/** The node's ROPE id of the object (its id, except a pipe producer in its producer's connection). */
	get objectId(): string;
	get closed(): boolean;
	get kind(): MediaKind;
	get rtpParameters(): RtpParameters;
	get type(): ProducerType;
	get consumableRtpParameters(): RtpParameters;
	get paused(): boolean;
	get score(): ProducerScore[];
	get appData(): A;
	set appData(appData: A);
	get observer(): EnhancedEventEmitter<ProducerObserverEvents>;
	close(): void;
	dump(): Promise<any>;
	getStats(): Promise<any[]>;
	pause(): Promise<void>;
	resume(): Promise<void>;
	enableTraceEvent(types?: ProducerTraceEventType[]): Promise<void>;
	send(rtpPacket: Buffer): void;
}

export type ConsumerType = 'simple' | 'simulcast' | 'svc' | 'pipe';

export interface ConsumerLayers {
	spatialLayer: number;
	temporalLayer?: number;
}

export interface ConsumerScore {
	score: number;
	producerScore: number;
	producerScores: number[];
}

export interface ConsumerOptions<A extends AppData = AppData> {
	producerId: string;
	rtpCapabilities: RtpCapabilities;
	paused?: boolean;
	mid?: string;
	preferredLayers?: ConsumerLayers;
	ignoreDtx?: boolean;
	enableRtx?: boolean;
	pipe?: boolean;
	appData?: A;
}

export type ConsumerEvents = ListenerError & {
	transportclose: [];
	producerclose: [];
	producerpause: [];
	producerresume: [];
	score: [ConsumerScore];
	layerschange: [ConsumerLayers | undefined];
	trace: [any];
	rtp: [Buffer];
};

export type ConsumerObserverEvents = {
	close: [];
	pause: [];
	resume: [];
	score: [ConsumerScore];
	layerschange: [ConsumerLayers | undefined];
	trace: [any];
};

export class Consumer<A extends AppData = AppData> extends EnhancedEventEmitter<ConsumerEvents> {
	get id(): string;
	/** The node's ROPE id of the object (its id, except a pipe producer in its producer's connection). */
	get objectId(): string;
	get producerId(): string;
	get closed(): boolean;
	get kind(): MediaKind;
	get rtpParameters(): RtpParameters;
	get type(): ConsumerType;
	get paused(): boolean;
	get producerPaused(): boolean;
	get priority(): number;
	get score(): ConsumerScore;
	get preferredLayers(): ConsumerLayers | undefined;
	get currentLayers(): ConsumerLayers | undefined;
	get appData(): A;
	set appData(appData: A);
	get observer(): EnhancedEventEmitter<ConsumerObserverEvents>;
	close(): void;
	dump(): Promise<any>;
	getStats(): Promise<any[]>;
	pause(): Promise<void>;
	resume(): Promise<void>;
	setPreferredLayers(layers: ConsumerLayers): Promise<void>;
	setPriority(priority: number): Promise<void>;
	unsetPriority(): Promise<void>;
	requestKeyFrame(): Promise<void>;
	enableTraceEvent(types?: string[]): Promise<void>;
}

export type DataProducerType = 'sctp' | 'direct';

export interface DataProducerOptions<A extends AppData = AppData> {
	id?: string;
	sctpStreamParameters?: SctpStreamParameters;
	label?: string;
	protocol?: string;
	paused?: boolean;
	appData?: A;
}

export type DataProducerEvents = ListenerError & { transportclose: [] };
export type DataProducerObserverEvents = { close: []; pause: []; resume: [] };

export class DataProducer<A extends AppData = AppData> extends EnhancedEventEmitter<DataProducerEvents> {
	get id(): string;
	/** The node's ROPE id of the object (its id, except a pipe producer in its producer's connection). */
	get objectId(): string;
	get closed(): boolean;
	get type(): DataProducerType;
	get sctpStreamParameters(): SctpStreamParameters | undefined;
	get label(): string;
	get protocol(): string;
	get paused(): boolean;
	get appData(): A;
	set appData(appData: A);
	get observer(): EnhancedEventEmitter<DataProducerObserverEvents>;
	close(): void;
	dump(): Promise<any>;
	getStats(): Promise<any[]>;
	pause(): Promise<void>;
	resume(): Promise<void>;
	send(message: string | Buffer, ppid?: number, subchannels?: number[], requiredSubchannel?: number): void;
}

export type DataConsumerType = 'sctp' | 'direct';

export interface DataConsumerOptions<A extends AppData = AppData> {
	dataProducerId: string;
	ordered?: boolean;
	maxPacketLifeTime?: number;
	maxRetransmits?: number;
	paused?: boolean;
	subchannels?: number[];
	appData?: A;
}

export type DataConsumerEvents = ListenerError & {
	transportclose: [];
	dataproducerclose: [];
	dataproducerpause: [];
	dataproducerresume: [];
	message: [Buffer, number];
	sctpsendbufferfull: [];
	bufferedamountlow: [number];
};

export type DataConsumerObserverEvents = { close: []; pause: []; resume: [] };

export class DataConsumer<A extends AppData = AppData> extends EnhancedEventEmitter<DataConsumerEvents> {
	get id(): string;
	/** The node's ROPE id of the object (its id, except a pipe producer in its producer's connection). */
	get objectId(): string;
	get dataProducerId(): string;
	get closed(): boolean;
	get type(): DataConsumerType;
	get sctpStreamParameters(): SctpStreamParameters | undefined;
	get label(): string;
	get protocol(): string;
	get paused(): boolean;
	get dataProducerPaused(): boolean;
	get subchannels(): number[];
	get appData(): A;
	set appData(appData: A);
	get observer(): EnhancedEventEmitter<DataConsumerObserverEvents>;
	close(): void;
	dump(): Promise<any>;
	getStats(): Promise<any[]>;
	pause(): Promise<void>;
	resume(): Promise<void>;
	setBufferedAmountLowThreshold(threshold: number): Promise<void>;
	getBufferedAmount(): Promise<number>;
	setSubchannels(subchannels: number[]): Promise<void>;
	addSubchannel(subchannel: number): Promise<void>;
	removeSubchannel(subchannel: number): Promise<void>;
	send(message: string | Buffer, ppid?: number): Promise<void>;
}

// ---------------------------------------------------------------- RTP observers

export type RtpObserverEvents = ListenerError & { routerclose: [] };

export type RtpObserverObserverEvents = {
	close: [];
	pause: [];
	resume: [];
	addproducer: [Producer];
	removeproducer: [Producer];
};

export class RtpObserver<A extends AppData = AppData, E extends Record<string, any[]> = RtpObserverEvents, O extends Record<string, any[]> = RtpObserverObserverEvents> extends EnhancedEventEmitter<E> {
	get id(): string;
	/** The node's ROPE id of the object (its id, except a pipe producer in its producer's connection). */
	get objectId(): string;
	get closed(): boolean;
	get paused(): boolean;
	get appData(): A;
	set appData(appData: A);
	get observer(): EnhancedEventEmitter<O>;
	close(): void;
	pause(): Promise<void>;
	resume(): Promise<void>;
	addProducer(options: { producerId: string }): Promise<void>;
	removeProducer(options: { producerId: string }): Promise<void>;
}

export interface ActiveSpeakerObserverOptions<A extends AppData = AppData> {
	interval?: number;
	appData?: A;
}

export interface ActiveSpeakerObserverDominantSpeaker {
	producer: Producer;
}

export class ActiveSpeakerObserver<A extends AppData = AppData> extends RtpObserver<
	A,
	RtpObserverEvents & { dominantspeaker: [ActiveSpeakerObserverDominantSpeaker] },
	RtpObserverObserverEvents & { dominantspeaker: [ActiveSpeakerObserverDominantSpeaker] }
> {}

export interface AudioLevelObserverOptions<A extends AppData = AppData> {
	maxEntries?: number;
	threshold?: number;
	interval?: number;
	appData?: A;
}

export interface AudioLevelObserverVolume {
	producer: Producer;
	volume: number;
}

export class AudioLevelObserver<A extends AppData = AppData> extends RtpObserver<
	A,
	RtpObserverEvents & { volumes: [AudioLevelObserverVolume[]]; silence: [] },
	RtpObserverObserverEvents & { volumes: [AudioLevelObserverVolume[]]; silence: [] }
> {}

// ---------------------------------------------------------------- the module

export type ObserverEvents = { newworker: [Worker] };

export declare const types: {
	Worker: typeof Worker;
	WebRtcServer: typeof WebRtcServer;
	Router: typeof Router;
	Transport: typeof Transport;
	WebRtcTransport: typeof WebRtcTransport;
	PlainTransport: typeof PlainTransport;
	PipeTransport: typeof PipeTransport;
	DirectTransport: typeof DirectTransport;
	Producer: typeof Producer;
	Consumer: typeof Consumer;
	DataProducer: typeof DataProducer;
	DataConsumer: typeof DataConsumer;
	RtpObserver: typeof RtpObserver;
	ActiveSpeakerObserver: typeof ActiveSpeakerObserver;
	AudioLevelObserver: typeof AudioLevelObserver;
	EnhancedEventEmitter: typeof EnhancedEventEmitter;
	TypeError: TypeErrorConstructor;
	UnsupportedError: typeof UnsupportedError;
	InvalidStateError: typeof InvalidStateError;
};

export interface ConnectOptions {
	/** Sent as `Authorization: Bearer <token>`. */
	token?: string;
	/** More HTTP headers for the WebSocket upgrade. */
	headers?: Record<string, string>;
	/** Milliseconds a call may wait for its answer (default 10000). */
	timeout?: number;
}

export interface RemoteMediasoup {
	/** The mediasoup Node API version this client mirrors. */
	readonly version: string;
	readonly types: typeof types;
	readonly observer: EnhancedEventEmitter<ObserverEvents>;
	/** A description of where workers run (mediasoup's is a file path). */
	readonly workerBin: string;
	createWorker<A extends AppData = AppData>(settings?: WorkerSettings<A>): Promise<Worker<A>>;
	getSupportedRtpCapabilities(): RtpCapabilities;
	parseScalabilityMode(scalabilityMode?: string): ScalabilityMode;
	connect(url: string, options?: ConnectOptions): RemoteMediasoup;
	/** The node's own mediasoup (worker) version. */
	getNodeVersion(): Promise<string>;
	/** The RTP capabilities of the node's worker. */
	getNodeRtpCapabilities(): Promise<RtpCapabilities>;
	/** Closes this module's connection: the node closes everything it made. */
	close(): void;
}

export declare const version: string;
export declare const observer: EnhancedEventEmitter<ObserverEvents>;
export declare const workerBin: string;
export declare function createWorker<A extends AppData = AppData>(settings?: WorkerSettings<A>): Promise<Worker<A>>;
export declare function getSupportedRtpCapabilities(): RtpCapabilities;
export declare function parseScalabilityMode(scalabilityMode?: string): ScalabilityMode;
/** A module of the same shape with a connection of its own to `url`. */
export declare function connect(url: string, options?: ConnectOptions): RemoteMediasoup;
export declare function getNodeVersion(): Promise<string>;
export declare function getNodeRtpCapabilities(): Promise<RtpCapabilities>;
export declare function close(): void;
