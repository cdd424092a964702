"""The words of a citizen-service search: stop words, weak words, synonyms and off-topic
subjects. All keys are accent-folded and lower-case (see ``knowledge.index.fold``).

The synonym map and the weak words were chosen on the ``tune`` split of
``tests/data/knowledge_questions.yml`` and from how citizens name the services; the
off-topic subjects are matters of the federal and state governments and other cities, which
a city's documents never answer even when they share a word ("imposto de renda" and IPTU).
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words too common in questions to tell documents apart: never searched.
STOP_WORDS = _words(
    """a ao aos as ate com como da das de do dos e ela ele em entre era essa esse esta este eu
    foi for ha isso ja la lhe mais mas me meu minha muito na nas no nos nao o onde os ou para
    pela pelas pelo pelos por pra pro qual quais quando que quem se sem ser seu sua tem ter
    tenho um uma uns umas vc voce voces vou faz faco preciso quero queria gostaria posso pode
    saber sobre tipo algum alguma aqui ai entao tambem so sim oi ola bom dia boa tarde noite
    prefeitura cidade nova aurora favor obrigado obrigada oq pq qnd q tb tbm vcs ta to esta
    estou agora hoje ontem amanha e ne meus minhas seus suas dele dela isso aquilo coisa
    alguem gente vai ir tava fica"""
)

# Words that carry little meaning in a question: they count, at half weight, but never
# decide a match alone (the common word "casa" pulled unrelated questions to "Retirada de
# móveis e entulho em casa").
WEAK_WORDS = _words(
    """casa tirar tiro tira fazer feito pegar pego pedir peco levar levo usar dar consigo
    conseguir rua bairro perto longe lado filho filha mae pai familia pessoa quanto quantos
    custa tempo demora dias horas hora horario vez vezes outro outra ano mes semana documento
    documentos numero telefone ligar ajuda ajudar direito precisa agora sempre todo toda
    problema regiao local endereco perdi perder novo velho velha grande enorme"""
)

# Citizen words and phrases ▸ the words the documents use (appended to the query).
SYNONYMS: dict[str, str] = {
    # health
    "postinho": "ubs posto saude",
    "posto de saude": "ubs",
    "posto": "ubs",
    "medico": "consulta clinico",
    "doutor": "consulta clinico",
    "marcar": "agendar",
    "marco": "agendar",
    "passei mal": "urgencia upa",
    "pronto socorro": "urgencia upa",
    "emergencia": "urgencia upa",
    "madrugada": "urgencia noite upa",
    "remedio": "medicamentos farmacia",
    "remedios": "medicamentos farmacia",
    "bebe": "criancas",
    "nenem": "criancas",
    "vacino": "vacina",
    "vacinar": "vacina",
    "cartao de vacina": "caderneta vacinacao",
    "carteira de vacina": "caderneta vacinacao",
    # taxes
    "imposto da casa": "iptu",
    "imposto do imovel": "iptu",
    "imposto do apartamento": "iptu",
    "imposto do terreno": "iptu",
    "imposto predial": "iptu",
    "carne": "iptu",
    "de uma vez": "cota unica desconto",
    "a vista": "cota unica desconto",
    "pensionista": "pensionistas isencao",
    "aposentado": "aposentados isencao",
    # rubbish and recycling
    "lixeiro": "coleta lixo caminhao",
    "caminhao do lixo": "coleta",
    "caminhao de lixo": "coleta",
    "restos de obra": "entulho obras",
    "reforma": "entulho obras",
    "geladeira": "moveis objetos grandes",
    "fogao": "moveis objetos grandes",
    "armario": "moveis objetos grandes",
    "cama": "moveis objetos grandes",
    "sofa": "sofas moveis",
    "garrafa": "reciclaveis plastico",
    "papelao": "reciclaveis papel",
    # schools
    "papeis": "documentos",
    "papelada": "documentos",
    "mudar de escola": "transferencia",
    "trocar de escola": "transferencia",
    "mudar meu filho de escola": "transferencia",
    "colegio": "escola",
    "van escolar": "transporte escolar",
    "onibus da escola": "transporte escolar",
    # transport
    "busao": "onibus",
    "buzao": "onibus",
    "passe livre": "gratuidade",
    "recarregar": "recarga",
    "recarrego": "recarga",
    # city maintenance and civil defence
    "alagou": "alagamentos",
    "alagada": "alagamentos",
    "alagado": "alagamentos",
    "enchente": "alagamentos",
    "inundacao": "alagamentos",
    "desmoronou": "deslizamentos",
    "luz do poste": "poste iluminacao",
    "lampada": "lampadas poste iluminacao",
    "galho": "poda arvores",
    "fio": "rede eletrica",
    "fios": "rede eletrica",
    "caiu": "caidas",
    "mato": "limpeza terrenos",
    # businesses
    "restaurante": "alvara restaurantes",
    "lanchonete": "alvara",
    "abrir uma empresa": "alvara",
    "licenca": "alvara licenca",
    # social assistance
    "comida": "cesta basica",
    "passando necessidade": "cesta basica vulnerabilidade",
    "cadunico": "cadastro unico",
    "cad unico": "cadastro unico",
    # complaints
    "reclamar": "reclamacao ouvidoria",
    "denunciar": "denuncia",
}

# Subjects of other governments or other cities: a question naming one gets no answer from
# the city's documents, however many words it shares with them.
OFF_TOPIC = frozenset(
    [
        # federal
        "imposto de renda",
        "receita federal",
        "inss",
        "fgts",
        "pis",
        "seguro desemprego",
        "passaporte",
        "titulo de eleitor",
        "cartorio",
        "certidao de casamento",
        "auxilio doenca",
        "beneficio do inss",
        "policia federal",
        # state
        "carteira de motorista",
        "cnh",
        "habilitacao",
        "detran",
        "ipva",
        "licenciamento do carro",
        "multa de transito",
        "carteira de identidade",
        "rg",
        "policia militar",
        "boletim de ocorrencia",
        # not the city's business: buying, air travel
        "comprar",
        "compro",
        "aviao",
        "passagem aerea",
        # other cities
        "sao paulo",
        "rio de janeiro",
        "belo horizonte",
        "brasilia",
        "curitiba",
        "porto alegre",
        "salvador",
        "recife",
        "fortaleza",
        "florianopolis",
        "goiania",
        "manaus",
        "belem",
        "outra cidade",
    ]
)
